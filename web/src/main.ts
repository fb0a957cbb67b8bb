import "./style.css";
import { fetchAccessToken, forgetToken, storedToken, type Token } from "./auth";
import { type Client, MODEL_RESOURCES, PROVIDERS, createConfig, listConfigs, makeClient } from "./client";
import { $, errorText, h } from "./dom";
import { History } from "./history";
import { Talk } from "./talk";

let token: Token | null = null;
let client: Client | null = null;

const requireClient = (): Client => {
  if (!client) throw new Error("Not signed in");
  return client;
};
const requireToken = (): string => {
  if (!token) throw new Error("Not signed in");
  return token.accessToken;
};

const talk = new Talk(requireClient, requireToken, () => {
  historyStale = true;
});
const history = new History(requireClient);
let historyStale = true;

// --- sign in / out -------------------------------------------------------------------------
function enter(t: Token): void {
  token = t;
  client = makeClient(t.accessToken);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  $("conn-state").hidden = false;
  historyStale = true;
  void refreshConfigs();
  $("config-select").focus();
}

function leave(): void {
  talk.disconnect();
  talk.clearTranscript();
  forgetToken();
  token = null;
  client = null;
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("conn-state").hidden = true;
  $("signin").hidden = false;
  $<HTMLInputElement>("api-key").focus();
}

$<HTMLFormElement>("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget as HTMLFormElement;
  const apiKey = $<HTMLInputElement>("api-key");
  const secretKey = $<HTMLInputElement>("secret-key");
  const error = $("signin-error");
  error.textContent = "";
  if (!apiKey.value.trim() || !secretKey.value) {
    error.textContent = "Enter both the API key and the secret key.";
    (apiKey.value.trim() ? secretKey : apiKey).focus();
    return;
  }
  const submit = form.querySelector<HTMLButtonElement>("button[type=submit]")!;
  submit.disabled = true;
  submit.textContent = "Signing in…";
  try {
    const t = await fetchAccessToken(apiKey.value.trim(), secretKey.value);
    form.reset(); // the keys leave the page once the token is in hand
    enter(t);
  } catch (err) {
    error.textContent = errorText(err);
    secretKey.focus();
  } finally {
    submit.disabled = false;
    submit.textContent = "Sign in";
  }
});

$("sign-out").addEventListener("click", leave);

// --- configs -------------------------------------------------------------------------------
const configSelect = $<HTMLSelectElement>("config-select");

async function refreshConfigs(selectId?: string): Promise<void> {
  const keep = selectId ?? configSelect.value;
  configSelect.replaceChildren(h("option", { value: "" }, "Server defaults (no config)"));
  try {
    const configs = await listConfigs(requireClient());
    configs.sort((a, b) => (b.modifiedOn ?? 0) - (a.modifiedOn ?? 0));
    for (const c of configs) {
      configSelect.append(h("option", { value: c.id }, `${c.name ?? c.id} (v${c.version ?? 0})`));
    }
    if (keep && configs.some((c) => c.id === keep)) configSelect.value = keep;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 401) {
      leave();
      $("signin-error").textContent = "Your session expired; sign in again.";
      return;
    }
    $("session-error").textContent = `Could not load configs: ${errorText(err)}`;
  }
}

$("config-refresh").addEventListener("click", () => void refreshConfigs());

const provider = $<HTMLSelectElement>("cfg-provider");
for (const p of PROVIDERS) provider.append(h("option", { value: p.value }, p.label));
const models = $("models");
for (const m of MODEL_RESOURCES) models.append(h("option", { value: m }));
provider.addEventListener("change", () => {
  const model = $<HTMLInputElement>("cfg-model");
  model.placeholder = provider.value === "CUSTOM_LANGUAGE_MODEL" ? "https://…/chat/completions" : provider.value ? "model name" : "server default";
});

$<HTMLFormElement>("config-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("config-error");
  error.textContent = "";
  const name = $<HTMLInputElement>("cfg-name").value.trim();
  if (!name) {
    error.textContent = "Give the config a name.";
    $("cfg-name").focus();
    return;
  }
  const submit = (event.currentTarget as HTMLFormElement).querySelector<HTMLButtonElement>("button[type=submit]")!;
  submit.disabled = true;
  try {
    const created = await createConfig(requireClient(), requireToken(), {
      name,
      prompt: $<HTMLTextAreaElement>("cfg-prompt").value,
      voice: $<HTMLInputElement>("cfg-voice").value,
      provider: provider.value,
      model: $<HTMLInputElement>("cfg-model").value,
      endOfTurnSilenceMs: Number($<HTMLInputElement>("cfg-silence").value) || 800,
      speechDetectionThreshold: Number($<HTMLInputElement>("cfg-threshold").value) || 0.5,
    });
    await refreshConfigs(created.id);
    ($("config-new") as HTMLDetailsElement).open = false;
    $<HTMLInputElement>("cfg-name").value = "";
    configSelect.focus();
  } catch (err) {
    error.textContent = errorText(err);
  } finally {
    submit.disabled = false;
  }
});

// --- talking -------------------------------------------------------------------------------
$("connect").addEventListener("click", () => {
  if (talk.connected) {
    talk.disconnect();
  } else {
    talk.clearTranscript();
    void talk.connect(configSelect.value || undefined);
  }
});
$("mic").addEventListener("click", () => void talk.toggleMic());
$<HTMLFormElement>("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>("message");
  const text = input.value.trim();
  if (!text) return;
  talk.sendText(text);
  input.value = "";
  input.focus();
});

// --- tabs (arrow keys move between them, as the ARIA tabs pattern has it) ------------------
const tabs = [$("tab-talk"), $("tab-history")];
function selectTab(tab: HTMLElement, focus = false): void {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")!).hidden = !on;
  }
  if (focus) tab.focus();
  if (tab.id === "tab-history" && historyStale) {
    historyStale = false;
    void history.load();
  }
}
tabs.forEach((tab, i) => {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (event) => {
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (event.key === "Home") selectTab(tabs[0]!, true);
    else if (event.key === "End") selectTab(tabs[tabs.length - 1]!, true);
    else if (step) selectTab(tabs[(i + step + tabs.length) % tabs.length]!, true);
    else return;
    event.preventDefault();
  });
});

// --- start ---------------------------------------------------------------------------------
const saved = storedToken();
if (saved) enter(saved);
else $<HTMLInputElement>("api-key").focus();

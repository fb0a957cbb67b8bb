/** The official `hume` SDK pointed at this origin. */
import { Hume, HumeClient } from "hume";

export type Client = HumeClient;

export function makeClient(accessToken: string): HumeClient {
  // A plain http(s) URL as `environment` makes the SDK derive REST (`/v0/evi/...`) and WebSocket
  // (`ws(s)://…/v0/evi/chat`) addresses from one origin.
  return new HumeClient({ accessToken, environment: window.location.origin });
}

/** Model names the SDK accepts for `language_model.model_resource` (it validates against an enum). */
export const MODEL_RESOURCES: readonly string[] = Object.values(Hume.empathicVoice.LanguageModelType);

export const PROVIDERS: readonly { value: string; label: string }[] = [
  { value: "", label: "Server default" },
  { value: "OPEN_AI", label: "OpenAI-compatible" },
  { value: "ANTHROPIC", label: "Anthropic" },
  { value: "GOOGLE", label: "Google" },
  { value: "GROQ", label: "Groq" },
  { value: "FIREWORKS", label: "Fireworks" },
  { value: "CEREBRAS", label: "Cerebras" },
  { value: "SAMBANOVA", label: "SambaNova" },
  { value: "X_AI", label: "xAI" },
  { value: "PERPLEXITY", label: "Perplexity" },
  { value: "CUSTOM_LANGUAGE_MODEL", label: "Custom language model (URL)" },
];

export interface NewConfig {
  name: string;
  prompt: string;
  voice: string;
  provider: string;
  model: string;
  endOfTurnSilenceMs: number;
  speechDetectionThreshold: number;
}

/**
 * Create a config through the SDK's REST client. One exception: the SDK only accepts `modelResource`
 * values from its enum, so a custom language model's URL is posted with the same request shape by
 * plain `fetch` (same origin, same bearer token).
 */
export async function createConfig(client: HumeClient, token: string, c: NewConfig): Promise<Hume.empathicVoice.ReturnConfig | { id: string; name: string }> {
  const request: Hume.empathicVoice.PostedConfig = {
    name: c.name,
    eviVersion: "3",
    prompt: c.prompt.trim() ? { text: c.prompt.trim() } : undefined,
    voice: c.voice.trim() ? { name: c.voice.trim(), provider: "HUME_AI" } : undefined,
    turnDetection: { endOfTurnSilenceMs: c.endOfTurnSilenceMs, speechDetectionThreshold: c.speechDetectionThreshold },
  };
  const model = c.model.trim();
  if (c.provider && model && !MODEL_RESOURCES.includes(model)) {
    const res = await fetch(new URL("/v0/evi/configs", window.location.origin), {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({
        name: request.name,
        evi_version: "3",
        prompt: request.prompt,
        voice: request.voice,
        language_model: { model_provider: c.provider, model_resource: model },
        turn_detection: { end_of_turn_silence_ms: c.endOfTurnSilenceMs, speech_detection_threshold: c.speechDetectionThreshold },
      }),
    });
    const body = (await res.json()) as { id?: string; name?: string; message?: string; detail?: { msg: string }[] };
    if (!res.ok || !body.id) throw new Error(`${res.status}: ${body.message ?? body.detail?.map((d) => d.msg).join("; ") ?? "rejected"}`);
    return { id: body.id, name: body.name ?? c.name };
  }
  if (c.provider) {
    request.languageModel = {
      modelProvider: c.provider as Hume.empathicVoice.ModelProviderEnum,
      modelResource: (model || undefined) as Hume.empathicVoice.LanguageModelType | undefined,
    };
  }
  return client.empathicVoice.configs.createConfig(request);
}

export async function listConfigs(client: HumeClient): Promise<Hume.empathicVoice.ReturnConfig[]> {
  const page = await client.empathicVoice.configs.listConfigs({ pageSize: 100, restrictToMostRecent: true });
  const out: Hume.empathicVoice.ReturnConfig[] = [];
  for await (const config of page) out.push(config);
  return out;
}

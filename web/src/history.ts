/** History: chats and chat groups, their events, and the reconstructed audio of a chat. */
import type { Hume } from "hume";
import type { Client } from "./client";
import { $, errorText, formatDuration, formatTime, h } from "./dom";
import { emotionBars, type Scores } from "./emotions";

type Kind = "chats" | "groups";
type Page<T> = { data: T[]; response: unknown; getNextPage(): Promise<unknown> };

/** The SDK's pager only knows "the last page was not empty"; the response's page numbers tell. */
function hasMore(page: Page<unknown>): boolean {
  const r = page.response as { pageNumber?: number; totalPages?: number };
  return typeof r.pageNumber === "number" && typeof r.totalPages === "number" && r.pageNumber + 1 < r.totalPages;
}

const PAGE_SIZE = 20;
const AUDIO_POLL_MS = 1000;
const AUDIO_POLL_LIMIT = 120;

export class History {
  private kind: Kind = "chats";
  private page: Page<Hume.empathicVoice.ReturnChat> | Page<Hume.empathicVoice.ReturnChatGroup> | null = null;
  private selected: string | null = null;
  private generation = 0; // drops answers that arrive after the user moved on

  private readonly list = $<HTMLUListElement>("history-list");
  private readonly more = $<HTMLButtonElement>("history-more");
  private readonly detail = $("history-detail");

  constructor(private readonly client: () => Client) {
    $("show-chats").addEventListener("click", () => this.show("chats"));
    $("show-groups").addEventListener("click", () => this.show("groups"));
    $("history-refresh").addEventListener("click", () => void this.load());
    this.more.addEventListener("click", () => void this.loadMore());
  }

  show(kind: Kind): void {
    this.kind = kind;
    $("show-chats").setAttribute("aria-pressed", String(kind === "chats"));
    $("show-groups").setAttribute("aria-pressed", String(kind === "groups"));
    this.list.setAttribute("aria-label", kind === "chats" ? "Chats" : "Chat groups");
    void this.load();
  }

  async load(): Promise<void> {
    const generation = ++this.generation;
    this.list.replaceChildren(h("li", { class: "empty" }, "Loading…"));
    this.more.hidden = true;
    try {
      const ev = this.client().empathicVoice;
      this.page =
        this.kind === "chats"
          ? await ev.chats.listChats({ pageSize: PAGE_SIZE, ascendingOrder: false })
          : await ev.chatGroups.listChatGroups({ pageSize: PAGE_SIZE, ascendingOrder: false });
      if (generation !== this.generation) return;
      this.list.replaceChildren();
      this.renderItems(this.page.data);
      if (!this.page.data.length) {
        this.list.append(h("li", { class: "empty" }, this.kind === "chats" ? "No chats yet." : "No chat groups yet."));
      }
      this.more.hidden = !hasMore(this.page);
    } catch (err) {
      this.list.replaceChildren(h("li", { class: "error" }, errorText(err)));
    }
  }

  private async loadMore(): Promise<void> {
    if (!this.page || !hasMore(this.page)) return;
    this.more.disabled = true;
    try {
      await this.page.getNextPage(); // the page object now holds the next page's items
      this.renderItems(this.page.data);
      this.more.hidden = !hasMore(this.page);
    } catch (err) {
      this.list.append(h("li", { class: "error" }, errorText(err)));
    } finally {
      this.more.disabled = false;
    }
  }

  private renderItems(items: (Hume.empathicVoice.ReturnChat | Hume.empathicVoice.ReturnChatGroup)[]): void {
    for (const item of items) {
      const isChat = "status" in item;
      const title = isChat ? formatTime(item.startTimestamp) : formatTime(item.mostRecentStartTimestamp);
      const sub = isChat
        ? `${item.eventCount ?? 0} events${item.endTimestamp ? ` · ${formatDuration(item.endTimestamp - item.startTimestamp)}` : ""}`
        : `${item.numChats} chat${item.numChats === 1 ? "" : "s"}`;
      const badge = isChat ? item.status : item.active ? "ACTIVE" : "";
      const button = h(
        "button",
        { type: "button", class: "item", "data-id": item.id, "aria-current": item.id === this.selected ? "true" : null },
        h("span", { class: "item-title" }, title),
        badge ? h("span", { class: `badge ${badge.toLowerCase()}` }, badge) : null,
        h("span", { class: "item-sub" }, sub),
        h("span", { class: "item-id" }, item.id),
      );
      button.addEventListener("click", () => {
        this.select(item.id, button);
        void (isChat ? this.openChat(item) : this.openGroup(item));
      });
      this.list.append(h("li", {}, button));
    }
  }

  private select(id: string, button: HTMLElement): void {
    this.selected = id;
    this.list.querySelectorAll("[aria-current]").forEach((el) => el.removeAttribute("aria-current"));
    button.setAttribute("aria-current", "true");
  }

  async openChat(chat: Hume.empathicVoice.ReturnChat): Promise<void> {
    const generation = ++this.generation;
    const events = h("div", { class: "events" }, h("p", { class: "empty" }, "Loading events…"));
    const audio = this.audioPanel(() => this.client().empathicVoice.chats.getAudio(chat.id));
    this.detail.replaceChildren(
      h("h2", {}, "Chat"),
      h(
        "dl",
        { class: "facts" },
        fact("Id", chat.id),
        fact("Group", chat.chatGroupId),
        fact("Status", chat.status),
        fact("Started", formatTime(chat.startTimestamp)),
        chat.endTimestamp ? fact("Length", formatDuration(chat.endTimestamp - chat.startTimestamp)) : null,
        chat.config ? fact("Config", `${chat.config.id} v${chat.config.version ?? "latest"}`) : null,
      ),
      audio,
      h("h3", {}, "Events"),
      events,
    );
    try {
      const page = await this.client().empathicVoice.chats.listChatEvents(chat.id, { pageSize: 100, ascendingOrder: true });
      const all: Hume.empathicVoice.ReturnChatEvent[] = [];
      for await (const e of page) all.push(e);
      if (generation !== this.generation) return;
      events.replaceChildren(eventList(all, chat.startTimestamp));
    } catch (err) {
      events.replaceChildren(h("p", { class: "error" }, errorText(err)));
    }
  }

  async openGroup(group: Hume.empathicVoice.ReturnChatGroup): Promise<void> {
    const generation = ++this.generation;
    const chats = h("ul", { class: "list compact" }, h("li", { class: "empty" }, "Loading chats…"));
    const events = h("div", { class: "events" }, h("p", { class: "empty" }, "Loading events…"));
    this.detail.replaceChildren(
      h("h2", {}, "Chat group"),
      h(
        "dl",
        { class: "facts" },
        fact("Id", group.id),
        fact("Chats", String(group.numChats)),
        fact("First started", formatTime(group.firstStartTimestamp)),
        fact("Last started", formatTime(group.mostRecentStartTimestamp)),
      ),
      h("h3", {}, "Chats"),
      chats,
      h("h3", {}, "Events"),
      events,
    );
    try {
      const ev = this.client().empathicVoice.chatGroups;
      const detail = await ev.getChatGroup(group.id, { pageSize: 50, ascendingOrder: true });
      if (generation !== this.generation) return;
      chats.replaceChildren(
        ...detail.chatsPage.map((chat) => {
          const b = h(
            "button",
            { type: "button", class: "item" },
            h("span", { class: "item-title" }, formatTime(chat.startTimestamp)),
            h("span", { class: `badge ${chat.status.toLowerCase()}` }, chat.status),
            h("span", { class: "item-sub" }, `${chat.eventCount ?? 0} events`),
            h("span", { class: "item-id" }, chat.id),
          );
          b.addEventListener("click", () => void this.openChat(chat));
          return h("li", {}, b);
        }),
      );
      const page = await ev.listChatGroupEvents(group.id, { pageSize: 100, ascendingOrder: true });
      const all: Hume.empathicVoice.ReturnChatEvent[] = [];
      for await (const e of page) all.push(e);
      if (generation !== this.generation) return;
      events.replaceChildren(eventList(all, group.firstStartTimestamp));
    } catch (err) {
      events.replaceChildren(h("p", { class: "error" }, errorText(err)));
    }
  }

  /** "Play audio": ask for the reconstruction, poll until it is ready, then play the signed URL. */
  private audioPanel(fetchAudio: () => Promise<Hume.empathicVoice.ReturnChatAudioReconstruction>): HTMLElement {
    const status = h("p", { class: "muted", role: "status" });
    const button = h("button", { type: "button", class: "btn" }, "Reconstruct audio");
    const panel = h("div", { class: "audio-panel" }, h("h3", {}, "Audio"), h("div", { class: "row" }, button, status));
    const generation = this.generation;
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        for (let i = 0; i < AUDIO_POLL_LIMIT; i++) {
          if (generation !== this.generation) return;
          const rec = await fetchAudio();
          status.textContent = `Reconstruction: ${rec.status.toLowerCase().replace("_", " ")}`;
          if (rec.status === "COMPLETE" && rec.signedAudioUrl) {
            const player = h("audio", { controls: true, preload: "auto", src: rec.signedAudioUrl, "aria-label": "Chat audio" });
            panel.append(player);
            button.remove();
            status.textContent = rec.signedUrlExpirationTimestampMillis
              ? `Ready. The link expires ${formatTime(rec.signedUrlExpirationTimestampMillis)}.`
              : "Ready.";
            player.focus();
            return;
          }
          if (rec.status === "ERROR" || rec.status === "CANCELLED") return;
          await new Promise((r) => setTimeout(r, AUDIO_POLL_MS));
        }
        status.textContent = "Still not ready; try again later.";
      } catch (err) {
        status.textContent = errorText(err);
      } finally {
        button.disabled = false;
      }
    });
    return panel;
  }
}

function fact(label: string, value: string): HTMLElement {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}

function eventList(events: Hume.empathicVoice.ReturnChatEvent[], start: number): HTMLElement {
  if (!events.length) return h("p", { class: "empty" }, "No events.");
  return h(
    "ol",
    { class: "event-list" },
    ...events.map((e) => {
      let scores: Scores | undefined;
      if (e.emotionFeatures) {
        try {
          scores = JSON.parse(e.emotionFeatures) as Scores;
        } catch {
          scores = undefined;
        }
      }
      return h(
        "li",
        { class: `event ${e.role.toLowerCase()}` },
        h(
          "div",
          { class: "event-meta" },
          h("span", { class: "event-time" }, `+${((e.timestamp - start) / 1000).toFixed(1)} s`),
          h("span", { class: "event-type" }, e.type.replace(/_/g, " ").toLowerCase()),
        ),
        e.messageText ? h("p", { class: "event-text" }, e.messageText) : null,
        emotionBars(scores),
      );
    }),
  );
}

/** Emotion scores → the top few, drawn as labelled bars. */
import { h } from "./dom";

export type Scores = Record<string, number | undefined>;

/** "aestheticAppreciation" or "aesthetic_appreciation" → "Aesthetic appreciation". */
export function emotionLabel(key: string): string {
  const words = key
    .replace(/_/g, " ")
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function topEmotions(scores: Scores | null | undefined, count = 3): [string, number][] {
  if (!scores) return [];
  return Object.entries(scores)
    .filter((e): e is [string, number] => typeof e[1] === "number" && Number.isFinite(e[1]))
    .sort((a, b) => b[1] - a[1])
    .slice(0, count);
}

export function emotionBars(scores: Scores | null | undefined, count = 3): HTMLElement | null {
  const top = topEmotions(scores, count);
  if (!top.length) return null;
  const max = Math.max(...top.map(([, v]) => v), 0.0001);
  return h(
    "ul",
    { class: "emotions", "aria-label": "Top emotions" },
    ...top.map(([key, value]) => {
      const fill = h("span", { class: "emotion-fill" });
      // Bars are relative to the strongest of the three; the number is the raw score.
      fill.style.width = `${Math.max(4, Math.round((value / max) * 100))}%`;
      return h(
        "li",
        { class: "emotion" },
        h("span", { class: "emotion-name" }, emotionLabel(key)),
        h("span", { class: "emotion-bar", "aria-hidden": "true" }, fill),
        h("span", { class: "emotion-value" }, value.toFixed(2)),
      );
    }),
  );
}

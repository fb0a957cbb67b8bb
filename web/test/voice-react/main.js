// Test-only page (built by test/voice-react.test.mjs, never shipped): @humeai/voice-react's
// VoiceProvider/useVoice, pointed at an openevi given in the URL fragment:
//   #host=http://127.0.0.1:PORT&token=ACCESS_TOKEN&config=CONFIG_ID
// It renders what useVoice exposes, so the test reads the library's own view of the chat.
import { createElement as h, StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import { VoiceProvider, useVoice } from "@humeai/voice-react";

const params = new URLSearchParams(window.location.hash.slice(1));
// Counted from the VoiceProvider callbacks: audio_output messages received, clips the player started.
const counts = { received: 0, started: 0, errors: [] };

function text(message) {
  if (message.type === "user_message" || message.type === "assistant_message") return message.message.content;
  if (message.type === "error") return `${message.slug ?? message.code}: ${message.message}`;
  return `[${message.type}]`;
}

function Chat() {
  const { connect, disconnect, status, messages, error } = useVoice();
  const [connectError, setConnectError] = useState("");
  const start = () => {
    connect({
      auth: { type: "accessToken", value: params.get("token") ?? "" },
      hostname: params.get("host") ?? undefined,
      configId: params.get("config") ?? undefined,
    }).catch((err) => setConnectError(String(err)));
  };
  return h(
    "main",
    null,
    h("button", { id: "start", onClick: start }, "Start"),
    h("button", { id: "stop", onClick: () => void disconnect() }, "Stop"),
    h("p", { id: "status", "data-status": status.value }, status.value, status.reason ? `: ${status.reason}` : ""),
    h("p", { id: "error" }, error ? `${error.type}/${error.reason}: ${error.message}` : connectError),
    h(
      "ol",
      { id: "messages" },
      messages.map((m, i) =>
        h(
          "li",
          { key: i, "data-type": m.type, "data-interim": m.type === "user_message" ? String(Boolean(m.interim)) : undefined },
          text(m),
        ),
      ),
    ),
  );
}

function App() {
  return h(
    VoiceProvider,
    {
      onAudioReceived: () => {
        counts.received += 1;
        document.body.dataset.audioReceived = String(counts.received);
      },
      onAudioStart: () => {
        counts.started += 1;
        document.body.dataset.audioStarted = String(counts.started);
      },
      onError: (err) => {
        counts.errors.push(`${err.type}/${err.reason}: ${err.message}`);
        document.body.dataset.errors = JSON.stringify(counts.errors);
      },
    },
    h(Chat),
  );
}

createRoot(document.getElementById("root")).render(h(StrictMode, null, h(App)));

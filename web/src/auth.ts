/**
 * Sign-in: the SDK's `fetchAccessToken` semantics, against this origin.
 *
 * `fetchAccessToken` from `hume` always builds `https://{host}/oauth2-cc/token`, which fails for an
 * openevi served over plain http (localhost). So the page sends the very same request itself —
 * POST, `Content-Type: application/x-www-form-urlencoded`, `Authorization: Basic base64(key:secret)`,
 * body `grant_type=client_credentials` — to its own origin, and reads `access_token` the same way.
 * The keys are used once and dropped; only the token (and its expiry) is kept, in sessionStorage.
 */

const STORAGE_KEY = "openevi.playground.token";

export interface Token {
  accessToken: string;
  expiresAt: number; // epoch ms
}

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

export async function fetchAccessToken(apiKey: string, secretKey: string): Promise<Token> {
  const res = await fetch(new URL("/oauth2-cc/token", window.location.origin), {
    method: "POST",
    headers: {
      "Content-Type": "application/x-www-form-urlencoded",
      Authorization: `Basic ${base64(`${apiKey}:${secretKey}`)}`,
    },
    body: new URLSearchParams({ grant_type: "client_credentials" }).toString(),
  });
  if (!res.ok) {
    let message = res.statusText;
    try {
      const body = (await res.json()) as { message?: string };
      message = body.message ?? message;
    } catch {
      /* not JSON */
    }
    throw new Error(res.status === 401 ? "The API key or secret key is not valid." : `Sign-in failed (${res.status}): ${message}`);
  }
  const body = (await res.json()) as { access_token?: unknown; expires_in?: unknown };
  if (typeof body.access_token !== "string") throw new Error("The server answered without an access_token.");
  const ttl = typeof body.expires_in === "number" ? body.expires_in : 1800;
  const token = { accessToken: body.access_token, expiresAt: Date.now() + ttl * 1000 };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(token));
  return token;
}

export function storedToken(): Token | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const token = JSON.parse(raw) as Token;
    return token.expiresAt - Date.now() > 30_000 ? token : null;
  } catch {
    return null;
  }
}

export function forgetToken(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

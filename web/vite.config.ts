import { defineConfig } from "vite";

// Built into the Python package: openevi serves openevi/web/static at /playground.
// `npm run dev` proxies the API to a local openevi (OPENEVI_URL, default http://127.0.0.1:8000).
const target = process.env.OPENEVI_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/playground/",
  build: {
    outDir: "../openevi/web/static",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    sourcemap: false,
    target: "es2022",
  },
  server: {
    proxy: {
      "/v0": { target, ws: true, changeOrigin: true },
      "/oauth2-cc": { target, changeOrigin: true },
    },
  },
});

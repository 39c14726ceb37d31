import { defineConfig } from "vite";

// The build is committed (web/ui/dist, embedded by web/routes_ui.go) and CI rebuilds it and
// compares, so it must be byte-for-byte deterministic: content-hashed names, no timestamps, no
// source maps with absolute paths.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    target: "es2022",
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    // `npm run dev` beside `make run`: the API of the running host.
    proxy: { "/api": "http://127.0.0.1:8080" },
  },
});

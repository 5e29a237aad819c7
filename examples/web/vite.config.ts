// `make web` (vite build examples/web): index.html + src/ → dist/, assets under relative
// paths so dist/ can be served from any path; public/config.js is copied unchanged.
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    reportCompressedSize: true,
  },
});

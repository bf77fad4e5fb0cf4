// Bundles the browser page: browser/page.mjs + @sentry/browser -> <outdir>/page.js, and copies
// browser/page.html beside it. Usage: node build.mjs <outdir>
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = process.argv[2];
if (!outdir) {
  console.error('usage: node build.mjs <outdir>');
  process.exit(2);
}
await mkdir(outdir, { recursive: true });
await build({
  entryPoints: [path.join(here, 'browser', 'page.mjs')],
  outfile: path.join(outdir, 'page.js'),
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2020',
  logLevel: 'warning',
});
await copyFile(path.join(here, 'browser', 'page.html'), path.join(outdir, 'page.html'));

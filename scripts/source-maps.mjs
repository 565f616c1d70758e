/**
 * Preloaded by scripts/run-server.sh (`node --import ./scripts/source-maps.mjs`) before the
 * gateway's entry point loads: stack traces name the gateway's own TypeScript sources, through the
 * source maps of `.build/server/`. Dependencies' source maps stay unread where Node can tell them
 * apart (Node 22.14 and later): `--enable-source-maps` would read every map the packages under
 * `node_modules` ship, with the sources they embed, and keep them in the JavaScript heap of the
 * process and of the workflow thread (README, "Memory"). Older Node reads them all, as that flag does.
 * Plain JavaScript, so it needs no loader.
 */
import module from 'node:module';

if (typeof module.setSourceMapsSupport === 'function') module.setSourceMapsSupport(true, { nodeModules: false, generatedCode: false });
else process.setSourceMapsEnabled(true);

/**
 * The layer plan, enforced (`npm run lint:deps`; test/unit/layers.test.ts runs it in `npm test`).
 * Imports flow one way, bottom to top:
 *   src/types → src/util → src/store → src/gateway → src/drivers → src/ops → src/cli → commands/
 * (src/index.ts, the library's public face, sits beside the CLI.) A layer imports only the ones
 * below it; a protocol's driver folder imports no other protocol's folder; the simulators,
 * written from the vendor documents, import nothing of the drivers, gateway, ops or CLI.
 * Type-only imports count too: a type that drags a higher layer in is a cycle in waiting.
 */
const LAYERS = ['types', 'util', 'store', 'gateway', 'drivers', 'ops', 'cli']

/** One rule per layer: nothing from a higher layer, the simulators, the public index or commands/. */
const layerRules = LAYERS.map((layer, i) => ({
  name: `layer-${layer}`,
  comment: `src/${layer}/ imports only ${i ? LAYERS.slice(0, i).map((l) => `src/${l}/`).join(', ') : 'node and npm packages'} (and itself)`,
  severity: 'error',
  from: { path: `^src/${layer}/` },
  to: { path: [...LAYERS.slice(i + 1).map((l) => `^src/${l}/`), '^src/simulators/', '^src/index\\.ts$', '^commands/'] },
}))

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no import cycle, whatever the layers',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'driver-own-folder',
      comment: "a protocol's driver imports no other protocol's folder, nor the registry that loads them all",
      severity: 'error',
      from: { path: '^src/drivers/([^/]+)/' },
      to: { path: '^src/drivers/', pathNot: '^src/drivers/$1/' },
    },
    {
      name: 'simulators-independent',
      comment: 'simulators follow the vendor documents, not our drivers (no shared codec hides a shared mistake)',
      severity: 'error',
      from: { path: '^src/simulators/' },
      to: { path: ['^src/(store|gateway|drivers|ops|cli)/', '^src/index\\.ts$', '^commands/'] },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'every relative import resolves to a file',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|node_modules)/' },
    // type-only imports are dependencies too
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.d.ts', '.json'],
    },
  },
}

// mocha for the whole suite: compiled tests (npm test builds first), the spec reporter, serial
// (2-core machines; etcd clusters and real processes). The default timeout suits unit and CLI
// tests; the etcd, node, migration and process-death suites set longer ones with this.timeout().
//
// Narrow a run with mocha's own options after `npm test --`: `--grep etcd`, or compiled files
// (`dist/test/etcd/markers.test.js`), which then replace the default set instead of adding to it.
const named = process.argv.slice(2).some((a) => a === '--spec' || a.startsWith('--spec=') || /\.test\.js$/.test(a));

module.exports = {
  spec: named ? [] : ['dist/test/**/*.test.js'],
  require: ['dist/test/support/setup.js'],
  reporter: 'spec',
  timeout: 60_000,
  slow: 2_000,
  parallel: false,
};

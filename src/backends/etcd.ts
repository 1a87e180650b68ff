/** The etcd backend lives in src/backends/etcd/ (index.ts: the layout and the class); this entry keeps its import path. */
export * from './etcd/index.js';

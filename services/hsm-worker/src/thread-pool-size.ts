// Imported first by main.ts, for its side effect. libuv reads UV_THREADPOOL_SIZE once, when its pool starts
// (the first fs, crypto, dns or pkcs11js *Async call), and never again: set later, it does nothing. The
// default of 4 threads would let four RSA generations hold every thread while the sessions' Encrypt calls
// (thread-pool call mode) wait for one. See workerThreadPoolSize in @kms/config.
import { ConfigError, workerThreadPoolSize } from "@kms/config";

try {
  process.env.UV_THREADPOOL_SIZE = String(workerThreadPoolSize(process.env));
} catch (err) {
  // A bad setting: main.ts reports it (loadWorkerConfig reads the same variables) and exits.
  if (!(err instanceof ConfigError)) throw err;
}

// Integration tests start real processes, which takes seconds on a loaded machine. jest reads testTimeout
// only from the top-level configuration, not from a project's, so the integration project sets it here
// (a file's own jest.setTimeout still wins).
jest.setTimeout(60_000);

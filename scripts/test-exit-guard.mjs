/**
 * Preloaded into every test file's process by scripts/test.sh (--import).
 * Node's test runner silently accepts a test process that exits with code 0
 * before its tests are done: the rest of its tests just do not run, and the
 * run stays green (deploy/k8s-check's first file did this in CI, cause not
 * found yet). Here an exit with code 0 that the test runner did not ask for
 * is reported with its caller's stack, so the log says who exited.
 * (Diagnostic for now: turning it into a failure is the next step once the
 * cause is known.)
 */
if (process.env.NODE_TEST_CONTEXT) {
  const exit = process.exit.bind(process);
  process.exit = (code) => {
    const stack = new Error("process.exit").stack ?? "";
    // the frame that called process.exit: the runner's own exits come from its internals
    const caller = stack.split("\n")[2] ?? "";
    const fromRunner = caller.includes("node:internal/");
    if (!fromRunner && (code === undefined || code === 0) && !process.exitCode) {
      process.stderr.write(
        `[test-exit-guard] ${process.argv[1]} called process.exit(${code ?? ""}) from outside the test runner:\n${stack}\n`,
      );
    }
    return exit(code);
  };
}

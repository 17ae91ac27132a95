import { fork, spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Every child forked by {@link forkChild} that has not exited yet. */
const live = new Set<ChildProcess>();

/**
 * Forks a compiled bench module with an IPC channel using the "advanced"
 * (structured clone) serialization, so typed arrays of latencies cross it
 * without a JSON detour. The child inherits stdout and stderr, so its crash
 * output is seen. Every child is tracked until it exits; see
 * {@link killChildren}.
 *
 * @param module URL of the compiled `.js` module
 * @param args `process.argv[2…]` of the child
 * @param execArgv Node flags of the child (e.g. `--cpu-prof`); none by default
 */
export function forkChild(module: URL, args: readonly string[], execArgv: readonly string[] = []): ChildProcess {
  const child = fork(fileURLToPath(module), [...args], {
    execArgv: [...execArgv],
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/**
 * Starts an executable that is not a bench module (etcd), tracked like a
 * forked child so that {@link killChildren} ends it too. Its stdin and stdout
 * are ignored; its stderr is piped for the caller to read.
 *
 * @param command path of the executable
 * @param args its arguments
 */
export function spawnChild(command: string, args: readonly string[]): ChildProcess {
  const child = spawn(command, [...args], { stdio: ["ignore", "ignore", "pipe"] });
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/**
 * Waits up to `timeoutMs` for `child` to exit on its own (after it was asked
 * to stop), then kills it. Resolves once it is gone.
 */
export function reapChild(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Kills every live child at once (synchronous, so it can run in a process
 * `exit` handler). The bench's last line of defence against orphans.
 */
export function killChildren(): void {
  for (const child of live) child.kill("SIGKILL");
}

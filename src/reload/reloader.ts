/**
 * Carries out planned reloads against their targets.
 *
 * The container runtime is found only when the first reload needs it, so a host that only
 * syncs files never needs docker or podman.
 *
 * @module
 */
import type { ReloadAction } from "../plan.ts";
import type { Reloader } from "../sync.ts";
import type { ContainerRuntime } from "./runtime.ts";

/** Options for {@link createReloader}. */
export interface ReloaderOptions {
  /** Finds the container runtime; called at most once, on the first container reload. */
  runtime: () => Promise<ContainerRuntime>;
}

/** Creates the reloader a run uses. */
export function createReloader(options: ReloaderOptions): Reloader {
  let runtime: Promise<ContainerRuntime> | undefined;
  return {
    async reload(action: ReloadAction): Promise<void> {
      const { target, reload } = action;
      if (target.kind !== "container") {
        throw new Error(`reloading ${target.kind} targets is not supported yet`);
      }
      if (reload.kind !== "signal") {
        throw new Error(`recipe "${reload.name}" is not supported yet`);
      }
      runtime ??= options.runtime();
      await (await runtime).signal(target.name, reload.signal);
    },
  };
}

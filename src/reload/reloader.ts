/**
 * Carries out planned reloads against their targets: containers (through docker or podman),
 * systemd units (`unit:NAME.service`) and host processes (`pidfile:/path`), with a bare signal
 * or a recipe.
 *
 * What a reload does is decided by {@linkcode reloadSteps}, a pure function over the target,
 * the reload and the recipe; {@linkcode createReloader} then performs the steps in order and
 * stops at the first failure. A failing validation therefore means: nothing is reloaded, the
 * reload fails (the run exits 1), and the message names the target and shows the validator's
 * output, with every secret value secretsync wrote blanked out.
 *
 * The container runtime is found only when the first container step needs it, so a host that
 * only syncs files never needs docker or podman.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Entry, Reload, Target } from "../map.ts";
import { type ReloadAction, targetLabel } from "../plan.ts";
import {
  builtInRegistry,
  commandText,
  type Recipe,
  type RecipeRegistry,
  signalPolicy,
  signalRefusal,
} from "../recipes.ts";
import type { Reloader, ReloadOutcome } from "../sync.ts";
import { signalPidfile } from "./pidfile.ts";
import { outputExcerpt, readSecretValues } from "./redact.ts";
import { type ContainerRuntime, ReloadError } from "./runtime.ts";
import { reloadUnitArgs, signalUnitArgs, systemctl } from "./systemd.ts";

/** One thing a reload does. */
export type ReloadStep =
  /** Run a command in the container; a non-zero exit stops the reload (nothing after runs). */
  | { kind: "validate"; command: string[] }
  /** Signal the container's main process. */
  | { kind: "signal-container"; signal: string }
  /** Run a command in the container; a non-zero exit fails the reload. */
  | { kind: "exec"; command: string[] }
  /** Run `systemctl ARGS` (`systemctl reload`). */
  | { kind: "systemctl"; args: string[] }
  /** Signal a unit's main process (`systemctl kill --kill-who=main`). */
  | { kind: "signal-unit"; unit: string; signal: string }
  /** Signal the process named by the pidfile. */
  | { kind: "signal-pidfile"; signal: string }
  /** Log a warning; nothing is sent. */
  | { kind: "warn"; message: string };

/**
 * What reloading `target` with `reload` does, step by step.
 *
 * - container: validation (if any) in the container, then the recipe's signal to PID 1 or its
 *   command in the container; a `none` recipe only warns.
 * - `unit:`: a signal goes through `systemctl kill --kill-who=main`. A recipe that runs a
 *   command, or has a validation, becomes `systemctl reload`: the unit's ExecReload is the
 *   service's own reload, and a validation cannot run "inside" a unit (packaged units such as
 *   nginx's and haproxy's check their configuration in ExecReload).
 * - `pidfile:`: a signal to the process; a recipe's validation cannot run there and is skipped
 *   with a warning; a recipe that only runs a command cannot be used (the map check rejects it).
 *
 * @throws {ReloadError} when the recipe is unknown or cannot apply to the target.
 */
export function reloadSteps(target: Target, reload: Reload, recipe?: Recipe): ReloadStep[] {
  const label = targetLabel(target);
  if (reload.kind === "signal") return [signalStep(target, reload.signal)];
  if (!recipe) throw new ReloadError(`Cannot reload ${label}: no recipe "${reload.name}"`);

  const { none, exec, signal } = recipe.reload;
  if (none !== undefined) {
    return [{ kind: "warn", message: `Did not reload ${label} (recipe ${recipe.name}): ${none}` }];
  }
  switch (target.kind) {
    case "container": {
      const steps: ReloadStep[] = recipe.validate
        ? [{ kind: "validate", command: recipe.validate }]
        : [];
      steps.push(exec ? { kind: "exec", command: exec } : signalStep(target, signal!));
      return steps;
    }
    case "unit":
      return exec || recipe.validate
        ? [{ kind: "systemctl", args: reloadUnitArgs(target.name) }]
        : [signalStep(target, signal!)];
    case "pidfile": {
      if (exec) {
        throw new ReloadError(
          `Cannot reload ${label} with recipe ${recipe.name}: it runs a command in a container`,
        );
      }
      const steps: ReloadStep[] = recipe.validate
        ? [{
          kind: "warn",
          message: `Recipe ${recipe.name} validates with "${
            commandText(recipe.validate)
          }" inside a container; not run for ${label}, which is a host process`,
        }]
        : [];
      steps.push(signalStep(target, signal!));
      return steps;
    }
  }
}

function signalStep(target: Target, signal: string): ReloadStep {
  switch (target.kind) {
    case "container":
      return { kind: "signal-container", signal };
    case "unit":
      return { kind: "signal-unit", unit: target.name, signal };
    case "pidfile":
      return { kind: "signal-pidfile", signal };
  }
}

/** How a step reads in `recipe show` and messages, for a target named `label`. */
export function stepText(step: ReloadStep, label: string): string {
  switch (step.kind) {
    case "validate":
      return `run "${commandText(step.command)}" in ${label}; if it fails, stop: no reload, exit 1`;
    case "signal-container":
      return `send ${step.signal} to the main process (PID 1) of ${label}`;
    case "exec":
      return `run "${commandText(step.command)}" in ${label}; if it fails, exit 1`;
    case "systemctl":
      return `run "systemctl ${step.args.join(" ")}"`;
    case "signal-unit":
      return `run "systemctl ${signalUnitArgs(step.unit, step.signal).join(" ")}"`;
    case "signal-pidfile":
      return `send ${step.signal} to the process whose PID is in ${label.slice(8)}`;
    case "warn":
      return `send nothing; log a warning: ${step.message}`;
  }
}

/** Options for {@link createReloader}. */
export interface ReloaderOptions {
  /** Finds the container runtime; called at most once, on the first container step. */
  runtime: () => Promise<ContainerRuntime>;
  /** The recipes the map may name. @default the built-in recipes */
  recipes?: RecipeRegistry;
  /**
   * The run's map entries: their files are what gets blanked out of command output, and their
   * recipes' `neverSignals` are enforced on every target. @default []
   */
  entries?: readonly Entry[];
  /** Let a reload send KILL, STOP, TERM, INT or QUIT (`--allow-stop-signals`). @default false */
  allowStopSignals?: boolean;
  /** Where warnings go (a `none` recipe, a skipped validation). */
  log?: Logger;
  /** The systemctl executable. @default "systemctl" */
  systemctl?: string;
  /** Deadline of one systemctl call, in ms. @default 30000 */
  systemctlTimeoutMs?: number;
}

/** Creates the reloader a run uses. */
export function createReloader(options: ReloaderOptions): Reloader {
  const recipes = options.recipes ?? builtInRegistry();
  const entries = options.entries ?? [];
  const policy = signalPolicy(entries, recipes, { allowStopSignals: options.allowStopSignals });
  let runtime: Promise<ContainerRuntime> | undefined;
  const containers = () => (runtime ??= options.runtime());
  const secrets = () => readSecretValues(entries.map((e) => e.path));

  return {
    async reload(action: ReloadAction): Promise<ReloadOutcome> {
      const { target, reload } = action;
      const label = targetLabel(target);
      const recipe = reload.kind === "recipe" ? recipes.get(reload.name)?.recipe : undefined;
      const steps = reloadSteps(target, reload, recipe);
      for (const step of steps) {
        const refusal = "signal" in step ? signalRefusal(policy, label, step.signal) : undefined;
        if (refusal) throw new ReloadError(`Refusing to reload ${label}: ${refusal}`);
      }
      for (const step of steps) {
        await perform(step, target, label);
      }
      // A recipe that sends nothing has only warned: nothing was reloaded.
      return steps.some((step) => step.kind !== "warn") ? "reloaded" : "skipped";
    },
  };

  async function perform(step: ReloadStep, target: Target, label: string): Promise<void> {
    switch (step.kind) {
      case "validate":
      case "exec": {
        const name = (target as { name: string }).name;
        const result = await (await containers()).exec(name, step.command);
        if (result.code === 0) return;
        const output = outputExcerpt(result, await secrets());
        const what = step.kind === "validate" ? "validation" : "reload command";
        const then = step.kind === "validate" ? "; not reloaded" : "";
        throw new ReloadError(
          `${what} "${commandText(step.command)}" failed in container "${name}" ` +
            `(exit code ${result.code})${then}: ${output}`,
        );
      }
      case "signal-container":
        return await (await containers()).signal((target as { name: string }).name, step.signal);
      case "systemctl":
      case "signal-unit": {
        const args = step.kind === "systemctl" ? step.args : signalUnitArgs(step.unit, step.signal);
        return await systemctl(args, {
          bin: options.systemctl,
          timeoutMs: options.systemctlTimeoutMs,
        });
      }
      case "signal-pidfile":
        await signalPidfile((target as { path: string }).path, step.signal, {
          secretFiles: entries.map((e) => e.path),
        });
        return;
      case "warn":
        options.log?.log("warn", "reload", step.message, {
          event: "reload_skipped",
          target: label,
        });
        return;
    }
  }
}

/**
 * Small helpers the build scripts share: {@linkcode BuildError}, the one error a failed build
 * throws; {@linkcode run} and {@linkcode exists} for programs and files; {@linkcode size} for
 * the sizes they print; and {@linkcode unseenDynamicImports}, used both on the program's
 * modules (`scripts/compile.ts`) and on npm packages (`scripts/prune.ts`). Kept apart so
 * those modules can share them without importing each other.
 *
 * @module
 */

/** A problem that stops the build; its message is the whole story. */
export class BuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BuildError";
  }
}

/**
 * Finds `import(…)` calls whose argument is not a plain string literal. Comments are skipped
 * line by line; good enough for this code base, where a false alarm costs a rewrite.
 */
export function unseenDynamicImports(file: string, source: string): string[] {
  const found: string[] = [];
  source.split("\n").forEach((line, index) => {
    const code = line.replace(/\/\/.*$/, "");
    if (/^\s*\*/.test(code)) return; // JSDoc line
    for (const match of code.matchAll(/\bimport\s*\(\s*(.?)/g)) {
      const rest = code.slice(match.index + match[0].length - match[1].length);
      const literal = /^(["'])[^"'\\]*\1\s*[,)]/.test(rest) || /^`[^`$\\]*`\s*[,)]/.test(rest);
      if (!literal) {
        found.push(
          `${file}:${index + 1}: dynamic import the compiler cannot see: ${line.trim()} ` +
            "(use a string literal, or add the module to --include)",
        );
      }
    }
  });
  return found;
}

/** `9.41 MB (8.97 MiB, 9412345 bytes)`: decimal first, as budgets are stated. */
export function size(bytes: number): string {
  return `${(bytes / 1e6).toFixed(2)} MB (${(bytes / 1024 / 1024).toFixed(2)} MiB, ${bytes} bytes)`;
}

export async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Runs a program; returns its stdout, or throws with its stderr when it fails. */
export async function run(
  program: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<string> {
  const result = await new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr).trim();
  if (!result.success) {
    throw new Error(
      `${program} ${args[0]} exited with code ${result.code}: ${stderr || "no output"}`,
    );
  }
  return new TextDecoder().decode(result.stdout);
}

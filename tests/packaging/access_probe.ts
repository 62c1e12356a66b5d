/**
 * Run by permissions_test.ts under the exact runtime flags: prints what
 * {@linkcode accessProblems} and {@linkcode explainNotCapable} say for the paths and URLs given
 * as `read:PATH`, `write:PATH`, `net:URL` and `open:PATH` (actually read the file), one JSON
 * line each.
 *
 * @module
 */
import { accessProblems, explainNotCapable } from "../../src/permissions.ts";

for (const arg of Deno.args) {
  const [kind, value] = [arg.slice(0, arg.indexOf(":")), arg.slice(arg.indexOf(":") + 1)];
  let messages: string[];
  if (kind === "open") {
    messages = await Deno.readTextFile(value).then(
      () => [],
      (error) => [explainNotCapable(error)],
    );
  } else {
    messages = accessProblems({ [kind]: [value] });
  }
  console.log(JSON.stringify({ arg, messages }));
}

/**
 * The dispatcher: global options before, between and after commands, typo
 * suggestions, the `port exec` hint, help, and the command table's help
 * texts agreeing with the library they describe.
 */
import assert from "node:assert/strict";
import { COMMANDS } from "../lib/cli/commands/mod.ts";
import type { Command } from "../lib/cli/command.ts";
import { SHELLS } from "../lib/completions/mod.ts";
import { MAIL_EVENT_TYPES, MAIL_STATUSES } from "../lib/mail/mod.ts";
import { DEFAULT_PORT_RANGE, DEFAULT_TTL_MS } from "../lib/ports/mod.ts";
import { DEFAULT_HOST, DEFAULT_PORT } from "../lib/service/mod.ts";
import { courier, json, type RunResult, withHome } from "./helpers/courier.ts";

function find(path: string[]): Command {
  let list = COMMANDS;
  let found: Command | undefined;
  for (const name of path) {
    found = list.find((c) => c.name === name);
    assert.ok(found, `no command ${path.join(" ")}`);
    list = found.subcommands ?? [];
  }
  return found!;
}

function assertUsage(result: RunResult, first: RegExp, hint: RegExp): void {
  assert.equal(result.code, 64, result.stderr);
  const [line, usage] = result.stderr.trim().split("\n");
  assert.match(line, first);
  assert.match(usage, hint);
}

Deno.test("--json is honoured before the command, after it, and between command and subcommand", async () => {
  await withHome(async (h) => {
    for (
      const args of [
        ["--json", "status", "--home", h.home],
        ["--json", "--home", h.home, "status"],
        ["status", "--home", h.home, "--json"],
        ["--home", h.home, "status", "--json"],
      ]
    ) {
      const result = await courier(args);
      assert.equal(result.code, 3, `${args.join(" ")}: ${result.stderr}`);
      assert.equal(json<{ state: string }>(result).state, "stopped", args.join(" "));
    }
    const leases = await courier(["port", "--json", "--home", h.home, "list"], {
      env: { COURIER_LEASE_DIR: h.leaseDir },
    });
    assert.equal(leases.code, 0, leases.stderr);
    assert.deepEqual(json(leases), { leases: [], count: 0 });
    // --home after the command wins over one before it, as the last word does.
    const last = await courier([
      "--home",
      h.sibling("other"),
      "status",
      "--home",
      h.home,
      "--json",
    ]);
    assert.equal(json<{ home: string }>(last).home, h.home);
  });
});

Deno.test("a usage error is JSON on stdout too when --json comes before the command", async () => {
  const result = await courier(["--json", "sttaus"]);
  assert.equal(result.code, 64);
  const { error } = json<{ error: { type: string; message: string; exit_code: number } }>(result);
  assert.equal(error.exit_code, 64);
  assert.match(error.message, /unknown command "sttaus"; did you mean "status"\?/);
  // After `--`, "--json" belongs to the command that port exec runs.
  const plain = await courier(["frobnicate", "--", "--json"]);
  assert.equal(plain.stdout, "");
});

Deno.test("typos of commands, subcommands and options get a suggestion", async () => {
  assertUsage(
    await courier(["sttaus"]),
    /^courier: unknown command "sttaus"; did you mean "status"\?$/,
    /Run 'courier --help' for usage\./,
  );
  assertUsage(
    await courier(["port", "alocate"]),
    /unknown command "alocate"; did you mean "allocate"\?/,
    /Run 'courier port --help'/,
  );
  assertUsage(
    await courier(["start", "--prot", "1"]),
    /unknown option "--prot"; did you mean "--port"\?/,
    /Run 'courier start --help'/,
  );
  assertUsage(
    await courier(["--jsno", "status"]),
    /unknown option "--jsno"; did you mean "--json"\?/,
    /Run 'courier --help'/,
  );
  assertUsage(await courier(["frobnicate"]), /^courier: unknown command "frobnicate"$/, /--help/);
  assertUsage(
    await courier(["port", "--bogus"]),
    /unknown option "--bogus"$/,
    /courier port --help/,
  );
});

Deno.test("port exec without --: an option of the command gets the hint to add --", async () => {
  await withHome(async (h) => {
    const result = await h.run(["port", "exec", "sh", "-c", "exit 3"]);
    assertUsage(
      result,
      /unknown option "-c" after sh: to pass it to sh, put -- before the command: courier port exec \[options\] -- sh -c …/,
      /Run 'courier port exec --help'/,
    );
    // With -- it runs, and its exit code is courier's.
    assert.equal((await h.run(["port", "exec", "--", "sh", "-c", "exit 3"])).code, 3);
    // An unknown option before the command is just unknown.
    assertUsage(
      await h.run(["port", "exec", "--prefered", "1", "--", "true"]),
      /did you mean "--preferred"/,
      /exec --help/,
    );
  });
});

Deno.test("help: courier's, a command's, a group's; with --json it is still help", async () => {
  const root = await courier(["--help"]);
  assert.equal(root.code, 0);
  const listed = root.stdout.split("\n").filter((line) => /^ {2}[a-z]/.test(line));
  for (const command of COMMANDS.filter((c) => !c.hidden)) {
    assert.ok(
      listed.some((line) =>
        line.startsWith(`  ${command.name} `) && line.endsWith(command.summary)
      ),
      `${command.name} is listed with its summary`,
    );
  }
  assert.match(root.stdout, /-V, --version/);
  assert.doesNotMatch(root.stdout, /^ {2}daemon/m);
  const start = await courier(["start", "--help", "--json"]);
  assert.equal(start.code, 0);
  assert.match(start.stdout, /^courier start: /);
  assert.match(start.stdout, /--if-not-running/);
  assert.match(start.stdout, /-h, --help/);
  const group = await courier(["port"]);
  assert.equal(group.code, 64, "a group without its subcommand is a usage error");
  assert.match(group.stdout, /^Commands:\n {2}allocate/m);
  assert.equal((await courier(["port", "-h"])).code, 0);
  const nothing = await courier([]);
  assert.equal(nothing.code, 64);
  assert.match(nothing.stdout, /^Usage:/m);
});

Deno.test("the help texts name the library's own defaults and values", () => {
  const start = find(["start"]).options;
  assert.match(start.port.description, new RegExp(`\\b${DEFAULT_PORT}\\b`));
  assert.match(start.host.description, new RegExp(DEFAULT_HOST.replaceAll(".", "\\.")));
  const allocate = find(["port", "allocate"]).options;
  assert.match(allocate.ttl.description, new RegExp(`default ${DEFAULT_TTL_MS / 1000} `));
  assert.match(
    allocate.range.description,
    new RegExp(`${DEFAULT_PORT_RANGE.start}-${DEFAULT_PORT_RANGE.end}`),
  );
  assert.deepEqual(find(["mail", "list"]).options.status.choices, MAIL_STATUSES);
  assert.deepEqual(find(["mail", "watch"]).options.types.choices, MAIL_EVENT_TYPES);
  const completions = find(["completions"]) as Command & { positionalChoices?: string[] };
  assert.deepEqual(completions.positionalChoices, SHELLS);
});

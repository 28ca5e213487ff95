import assert from "node:assert/strict";
import { parseArgs as nodeParseArgs } from "node:util";
import { type ArgOption, parseArgs, ParseArgsError } from "../lib/cli/parse_args.ts";
import { didYouMean, editDistance, suggest } from "../lib/cli/suggest.ts";
import { ExitCode } from "../lib/errors/mod.ts";

const OPTIONS: Record<string, ArgOption> = {
  port: { type: "string" },
  lines: { type: "string", short: "n" },
  follow: { type: "boolean", short: "f" },
  verbose: { type: "boolean", short: "v" },
  tag: { type: "string", short: "t", multiple: true },
  json: { type: "boolean" },
};

function parse(args: string[], allowPositionals = true) {
  return parseArgs(args, { options: OPTIONS, allowPositionals });
}

function problem(args: string[], allowPositionals = true): ParseArgsError {
  try {
    parse(args, allowPositionals);
  } catch (error) {
    assert.ok(error instanceof ParseArgsError, String(error));
    assert.equal(error.exitCode, ExitCode.Usage);
    return error;
  }
  throw new Error(`${args.join(" ")} parsed without an error`);
}

Deno.test("parseArgs: string options, long and short, with and without =", () => {
  assert.deepEqual(parse(["--port", "80"]).values, { port: "80" });
  assert.deepEqual(parse(["--port=80"]).values, { port: "80" });
  assert.deepEqual(parse(["--port="]).values, { port: "" });
  assert.deepEqual(parse(["--port=a=b"]).values, { port: "a=b" });
  assert.deepEqual(parse(["--port=-1"]).values, { port: "-1" });
  assert.deepEqual(parse(["-n", "5"]).values, { lines: "5" });
  assert.deepEqual(parse(["-n5"]).values, { lines: "5" });
  assert.deepEqual(parse(["-n", "-"]).values, { lines: "-" }, "a lone dash is a value");
  assert.deepEqual(parse(["--port", "1", "--port", "2"]).values, { port: "2" }, "the last wins");
});

Deno.test("parseArgs: booleans, grouped short flags, a string option ending a group", () => {
  assert.deepEqual(parse(["--json", "-f"]).values, { json: true, follow: true });
  assert.deepEqual(parse(["-fv"]).values, { follow: true, verbose: true });
  assert.deepEqual(parse(["-fn", "3"]).values, { follow: true, lines: "3" });
  assert.deepEqual(parse(["-fn3"]).values, { follow: true, lines: "3" });
  assert.deepEqual(parse(["-nfv"]).values, { lines: "fv" }, "a string option takes the rest");
});

Deno.test("parseArgs: multiple collects every value in order", () => {
  assert.deepEqual(parse(["-t", "a", "--tag=b", "--tag", "c", "-td"]).values, {
    tag: ["a", "b", "c", "d"],
  });
});

Deno.test("parseArgs: positionals, intermixed with options, and -- ending the options", () => {
  assert.deepEqual(parse(["a", "--json", "b", "-"]), {
    values: { json: true },
    positionals: ["a", "b", "-"],
  });
  assert.deepEqual(parse(["--port", "1", "--", "--json", "-n", "--"]), {
    values: { port: "1" },
    positionals: ["--json", "-n", "--"],
  });
  assert.deepEqual(parse([]), { values: {}, positionals: [] });
});

Deno.test("parseArgs: the same values and positionals as node:util parseArgs (strict)", () => {
  const inputs = [
    ["--port", "80", "a", "-fn", "3", "b"],
    ["-fvn5", "--tag", "x", "-ty", "--", "-f", "--port"],
    ["--port=", "-n", "-", "--json", "-", "c"],
    ["-t", "a", "-t", "b", "--port", "1", "--port=2"],
  ];
  for (const args of inputs) {
    const node = nodeParseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
    assert.deepEqual(parse(args), {
      values: { ...node.values },
      positionals: node.positionals,
    }, args.join(" "));
  }
});

Deno.test("parseArgs: the messages the CLI prints", () => {
  const cases: [string[], string, string, string][] = [
    [["--bogus"], "unknown-option", "--bogus", 'unknown option "--bogus"'],
    [["--bogus=1"], "unknown-option", "--bogus", 'unknown option "--bogus"'],
    [["-x"], "unknown-option", "-x", 'unknown option "-x"'],
    [["-fx"], "unknown-option", "-x", 'unknown option "-x"'],
    [["--port"], "missing-value", "--port", "option --port needs a value"],
    [["-n"], "missing-value", "-n", "option --lines needs a value"],
    [
      ["-n", "-3"],
      "dash-value",
      "-n",
      'option -n got a value starting with "-": write --lines=VALUE',
    ],
    [
      ["--port", "--json"],
      "dash-value",
      "--port",
      'option --port got a value starting with "-": write --port=VALUE',
    ],
    [["--json=1"], "unexpected-value", "--json", "option --json takes no value"],
  ];
  for (const [args, kind, token, message] of cases) {
    const error = problem(args);
    assert.equal(error.problem, kind, args.join(" "));
    assert.equal(error.token, token, args.join(" "));
    assert.equal(error.message, message, args.join(" "));
  }
  const extra = problem(["extra"], false);
  assert.equal(extra.problem, "unexpected-argument");
  assert.equal(extra.message, 'unexpected argument "extra"');
  assert.equal(problem(["--", "x"], false).message, 'unexpected argument "x"');
});

Deno.test("parseArgs: an error names the positionals that came before it", () => {
  assert.deepEqual(problem(["sh", "-c", "echo"]).positionals, ["sh"]);
  assert.deepEqual(problem(["-c", "sh"]).positionals, []);
});

Deno.test("parseArgs: names that exist on every object are not options", () => {
  assert.equal(problem(["--constructor"]).problem, "unknown-option");
  assert.equal(problem(["--toString=1"]).problem, "unknown-option");
});

Deno.test("suggest: close commands and options, nothing for unrelated words", () => {
  const commands = ["start", "stop", "restart", "status", "kill", "logs", "port", "mail"];
  assert.deepEqual(suggest("sttaus", commands), ["status"]);
  assert.deepEqual(suggest("statsu", commands), ["status"]);
  assert.deepEqual(suggest("stat", commands), ["status"], "a prefix");
  assert.deepEqual(suggest("stpo", commands), ["stop"]);
  assert.deepEqual(suggest("frobnicate", commands), []);
  assert.deepEqual(suggest("x", commands), []);
  assert.deepEqual(suggest("prot", ["port", "host", "timeout"]), ["port"]);
  assert.deepEqual(suggest("lgo", ["logs", "log"]), ["log"]);
  assert.equal(editDistance("sttaus", "status"), 1);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(didYouMean([]), "");
  assert.equal(didYouMean(["status"]), '; did you mean "status"?');
  assert.equal(didYouMean(["a", "b", "c"]), '; did you mean "a", "b" or "c"?');
});

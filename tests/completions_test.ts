/**
 * `courier completions bash|zsh|fish`: the scripts parse in their shells,
 * name every visible command and option of `COMMANDS` (so commands added
 * later are covered by these same tests), and the bash and fish ones
 * complete the right words when a shell actually runs them.
 */
import assert from "node:assert/strict";
import { type Command, GLOBAL_OPTIONS } from "../lib/cli/command.ts";
import { COMMANDS } from "../lib/cli/commands/mod.ts";
import {
  type CompletableCommand,
  completionScript,
  type Shell,
  SHELLS,
} from "../lib/completions/mod.ts";
import { VERSION } from "../lib/version/mod.ts";
import { courier } from "./helpers/courier.ts";

const decoder = new TextDecoder();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(command: string, args: string[], options: { cwd?: string } = {}): Promise<Run> {
  const output = await new Deno.Command(command, {
    args,
    cwd: options.cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Why `shell` cannot run here, or `null` when it can. */
async function missing(shell: string): Promise<string | null> {
  try {
    const result = await run(shell, ["-c", "exit 0"]);
    return result.code === 0 ? null : `${shell} -c 'exit 0' exited ${result.code}`;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return `${shell} is not installed`;
    throw error;
  }
}

const UNAVAILABLE: Record<Shell, string | null> = {
  bash: await missing("bash"),
  zsh: await missing("zsh"),
  fish: await missing("fish"),
};
for (const shell of SHELLS) {
  if (UNAVAILABLE[shell]) {
    console.warn(`completions_test: skipping ${shell} checks: ${UNAVAILABLE[shell]}`);
  }
}

/** A test that runs only where `shell` exists; its name says why when it is skipped. */
function shellTest(shell: Shell, name: string, fn: () => Promise<void>): void {
  const why = UNAVAILABLE[shell];
  Deno.test({ name: why ? `${name} (skipped: ${why})` : name, ignore: why !== null, fn });
}

async function withScript<T>(text: string, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "courier-completions-" });
  try {
    const path = `${dir}/script`;
    await Deno.writeTextFile(path, text);
    return await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A visible command with the path that leads to it and the options it takes there. */
interface Visible {
  path: string[];
  command: Command;
  optionWords: string[];
}

/** Walks `commands` like the dispatcher does, independently of the generator. */
function visibleCommands(commands: readonly Command[], parent: string[] = []): Visible[] {
  return commands.filter((c) => !c.hidden).flatMap((command) => {
    const path = [...parent, command.name];
    const specs = command.subcommands ? { help: GLOBAL_OPTIONS.help } : {
      ...command.options,
      ...GLOBAL_OPTIONS,
    };
    const optionWords = Object.entries(specs).flatMap(([name, spec]) =>
      spec.short ? [`--${name}`, `-${spec.short}`] : [`--${name}`]
    );
    return [
      { path, command, optionWords },
      ...visibleCommands(command.subcommands ?? [], path),
    ];
  });
}

/** A command list with every shape the generators handle, and awkward descriptions. */
const FIXTURE: CompletableCommand[] = [
  {
    name: "port",
    summary: "lease ports: it's [fast] and safe: really",
    usage: ["port allocate"],
    options: {},
    subcommands: [
      {
        name: "allocate",
        summary: "lease a port",
        usage: ["port allocate [--tag T]"],
        options: {
          tag: {
            type: "string",
            short: "t",
            valueName: "T",
            multiple: true,
            description: "a tag (may repeat); 'quoted' \\ back",
          },
          mode: {
            type: "string",
            valueName: "MODE",
            choices: ["fast", "safe"],
            description: "how: fast or safe",
          },
          out: { type: "string", valueName: "FILE", description: "write to FILE" },
        },
        run: () => Promise.resolve(0),
      },
      {
        name: "secret",
        summary: "hidden subcommand",
        usage: ["port secret"],
        options: {},
        hidden: true,
        run: () => Promise.resolve(0),
      },
    ],
  },
  {
    name: "exec",
    summary: "run a program",
    usage: ["exec -- PROGRAM"],
    options: { quiet: { type: "boolean", short: "q", description: "say less" } },
    positionals: true,
    run: () => Promise.resolve(0),
  },
  {
    name: "shell",
    summary: "pick a shell",
    usage: ["shell NAME"],
    options: {},
    positionals: true,
    positionalChoices: ["bash", "zsh"],
    run: () => Promise.resolve(0),
  },
  {
    name: "internal",
    summary: "hidden command",
    usage: ["internal"],
    options: { "internal-only": { type: "boolean", description: "never offered" } },
    hidden: true,
    run: () => Promise.resolve(0),
  },
];

Deno.test("every script offers the agent commands of mail and their options", () => {
  const words = ["next", "work", "watch", "release", "requeue", "prune", "concurrency", "no-retry"];
  words.push("reply", "older-than", "dry-run", "last-event-id", "cursor", "order", "mail.claimed");
  for (const shell of SHELLS) {
    const script = completionScript(shell, COMMANDS);
    for (const word of words) assert.ok(script.includes(word), `${shell}: ${word}`);
  }
});

Deno.test("COMMANDS has visible commands, completions among them", () => {
  const names = visibleCommands(COMMANDS).map((v) => v.path.join(" "));
  assert.ok(names.includes("completions"), names.join(", "));
});

for (const shell of SHELLS) {
  Deno.test(`the ${shell} script names every visible command and option of COMMANDS`, () => {
    const script = completionScript(shell, COMMANDS);
    assert.ok(script.includes(`courier ${VERSION}`), "the script names the version");
    for (const { path, command, optionWords } of visibleCommands(COMMANDS)) {
      const name = path.at(-1)!;
      assert.match(script, new RegExp(`(^|[^\\w-])${name}([^\\w-]|$)`), `command ${path}`);
      for (const word of optionWords) {
        // fish spells options as "-l name" / "-s x"; the others as words.
        const spelled = shell === "fish"
          ? (word.startsWith("--") ? `-l ${word.slice(2)}` : `-s ${word.slice(1)}`)
          : word;
        assert.ok(script.includes(spelled), `${shell}: option ${word} of ${path.join(" ")}`);
      }
      for (const spec of Object.values(command.options)) {
        for (const choice of spec.choices ?? []) {
          assert.ok(script.includes(choice), `${shell}: choice ${choice} of ${path.join(" ")}`);
        }
      }
    }
  });

  Deno.test(`the ${shell} script leaves hidden commands and subcommands out`, () => {
    const script = completionScript(shell, FIXTURE);
    for (const word of ["internal", "secret"]) assert.ok(!script.includes(word), word);
    for (const word of ["port", "allocate", "--tag", "fast", "exec", "shell"]) {
      assert.ok(script.includes(shell === "fish" ? word.replace(/^--/, "-l ") : word), word);
    }
  });

  shellTest(shell, `${shell} -n accepts the ${shell} script (COMMANDS and fixture)`, async () => {
    for (const commands of [COMMANDS, FIXTURE]) {
      await withScript(completionScript(shell, commands), async (path) => {
        const result = await run(shell, ["-n", path]);
        assert.equal(result.code, 0, `${shell} -n: ${result.stderr}`);
        assert.equal(result.stderr, "");
      });
    }
  });
}

/** What the bash script offers for `words` (the last one is being completed). */
function bashComplete(script: string, words: string[], cwd?: string): Promise<string[]> {
  const quoted = words.map((w) => `'${w.replaceAll("'", `'\\''`)}'`).join(" ");
  return withScript(
    `${script}
COMP_WORDS=(${quoted})
COMP_CWORD=${words.length - 1}
_courier
printf '%s\\n' "\${COMPREPLY[@]}"
`,
    async (path) => {
      const result = await run("bash", [path], { cwd });
      assert.equal(result.code, 0, result.stderr);
      return result.stdout.split("\n").filter(Boolean);
    },
  );
}

shellTest("bash", "bash completes every command, option and choice of COMMANDS", async () => {
  const script = completionScript("bash", COMMANDS);
  const visible = visibleCommands(COMMANDS);
  const top = visible.filter((v) => v.path.length === 1).map((v) => v.path[0]);
  assert.deepEqual(await bashComplete(script, ["courier", ""]), top);
  for (const hidden of COMMANDS.filter((c) => c.hidden)) {
    assert.ok(!top.includes(hidden.name), `hidden command ${hidden.name} is offered`);
  }
  for (const { path, command, optionWords } of visible) {
    const offered = await bashComplete(script, ["courier", ...path, "-"]);
    assert.deepEqual(offered.sort(), [...optionWords].sort(), `options of ${path.join(" ")}`);
    if (command.subcommands) {
      const subs = command.subcommands.filter((c) => !c.hidden).map((c) => c.name);
      assert.deepEqual(await bashComplete(script, ["courier", ...path, ""]), subs);
    }
    for (const [name, spec] of Object.entries(command.options)) {
      if (!spec.choices) continue;
      assert.deepEqual(await bashComplete(script, ["courier", ...path, `--${name}`, ""]), [
        ...spec.choices,
      ]);
    }
  }
  assert.deepEqual(await bashComplete(script, ["courier", "completions", ""]), [...SHELLS]);
});

shellTest(
  "bash",
  "bash completes nested, hidden, inline and directory values (fixture)",
  async () => {
    const script = completionScript("bash", FIXTURE);
    assert.deepEqual(await bashComplete(script, ["courier", ""]), ["port", "exec", "shell"]);
    assert.deepEqual(await bashComplete(script, ["courier", "port", ""]), ["allocate"]);
    assert.deepEqual(await bashComplete(script, ["courier", "port", "-"]), ["--help", "-h"]);
    assert.deepEqual(await bashComplete(script, ["courier", "port", "allocate", "--m"]), [
      "--mode",
    ]);
    // The value of an option is skipped when finding the command path.
    assert.deepEqual(await bashComplete(script, ["courier", "--home", "port", ""]), [
      "port",
      "exec",
      "shell",
    ]);
    assert.deepEqual(await bashComplete(script, ["courier", "--home", "/tmp", "p"]), ["port"]);
    assert.deepEqual(
      await bashComplete(script, ["courier", "port", "allocate", "-t", "x", "--mode", "f"]),
      ["fast"],
    );
    // "--mode=VALUE": one word, or split at "=" as bash's COMP_WORDBREAKS does.
    assert.deepEqual(await bashComplete(script, ["courier", "port", "allocate", "--mode=s"]), [
      "--mode=safe",
    ]);
    assert.deepEqual(await bashComplete(script, ["courier", "port", "allocate", "--mode", "="]), [
      "fast",
      "safe",
    ]);
    assert.deepEqual(
      await bashComplete(script, ["courier", "port", "allocate", "--mode", "=", "f"]),
      ["fast"],
    );
    assert.deepEqual(await bashComplete(script, ["courier", "shell", ""]), ["bash", "zsh"]);
    // A hidden command is not offered, and neither are its options.
    const afterHidden = await bashComplete(script, ["courier", "internal", "--"]);
    assert.ok(!afterHidden.includes("--internal-only"), afterHidden.join(" "));
    assert.ok(!completionScript("bash", FIXTURE).includes("internal"));
    assert.ok(!completionScript("bash", FIXTURE).includes("secret"));
    const dir = await Deno.makeTempDir({ prefix: "courier-completions-" });
    try {
      await Deno.mkdir(`${dir}/homes`);
      await Deno.writeTextFile(`${dir}/hosts.txt`, "");
      assert.deepEqual(await bashComplete(script, ["courier", "--home", "ho"], dir), ["homes"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** What the fish script offers for the command line `line`. */
async function fishComplete(script: string, line: string): Promise<string[]> {
  return await withScript(script, async (path) => {
    const result = await run("fish", [
      "--no-config",
      "-c",
      `source ${path}; complete -C '${line.replaceAll("'", "\\'")}'`,
    ]);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.split("\n").filter(Boolean).map((l) => l.split("\t")[0]);
  });
}

shellTest("fish", "fish completes commands, nested subcommands, options and choices", async () => {
  const script = completionScript("fish", FIXTURE);
  assert.deepEqual((await fishComplete(script, "courier ")).sort(), ["exec", "port", "shell"]);
  assert.deepEqual(await fishComplete(script, "courier port "), ["allocate"]);
  assert.deepEqual(await fishComplete(script, "courier port allocate --mode "), ["fast", "safe"]);
  assert.deepEqual(await fishComplete(script, "courier --home /tmp port allocate --mo"), [
    "--mode",
  ]);
  assert.deepEqual((await fishComplete(script, "courier shell ")).sort(), ["bash", "zsh"]);
  const real = completionScript("fish", COMMANDS);
  const top = visibleCommands(COMMANDS).filter((v) => v.path.length === 1).map((v) => v.path[0]);
  assert.deepEqual((await fishComplete(real, "courier ")).sort(), [...top].sort());
});

Deno.test("courier completions: prints the script, exit 0; a bad shell is a usage error (64)", async () => {
  const bash = await courier(["completions", "bash"]);
  assert.equal(bash.code, 0, bash.stderr);
  assert.equal(bash.stdout, completionScript("bash", COMMANDS));
  const json = await courier(["completions", "fish", "--json"]);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout), {
    shell: "fish",
    script: completionScript("fish", COMMANDS),
  });
  const unknown = await courier(["completions", "tcsh"]);
  assert.equal(unknown.code, 64);
  assert.match(unknown.stderr, /unknown shell "tcsh": expected one of bash, zsh, fish/);
  assert.ok(!unknown.stderr.includes("    at "), "no stack trace for a usage error");
  const none = await courier(["completions"]);
  assert.equal(none.code, 64);
  assert.match(none.stderr, /which shell\?/);
});

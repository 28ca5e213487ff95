import assert from "node:assert/strict";
import { parseSocketTable } from "../lib/net/mod.ts";
import {
  parseProcLocks,
  parseProcStat,
  parseSignal,
  readProcessIdentity,
  sameProcess,
} from "../lib/proc/mod.ts";
import { apiUrl, parseReadinessLine, READINESS_PREFIX } from "../lib/service/mod.ts";

Deno.test("parseProcStat copes with spaces and parentheses in the command name", () => {
  const text = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194304 1 0 0 0 0 0 0 0 20 0 1 0 987654 " +
    "1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
  assert.deepEqual(parseProcStat(text), {
    state: "S",
    ppid: 1,
    pgrp: 4242,
    tpgid: -1,
    startTicks: "987654",
  });
  assert.equal(parseProcStat("garbage"), null);
});

Deno.test("parseProcLocks reads flock holders and skips blocked waiters", () => {
  const locks = parseProcLocks(
    "1: FLOCK  ADVISORY  WRITE 1735 fe:00:2146368 0 EOF\n" +
      "1: -> FLOCK  ADVISORY  WRITE 1800 fe:00:2146368 0 EOF\n" +
      "2: POSIX  ADVISORY  READ 1735 fe:00:16039952 128 128\n" +
      "3: OFDLCK ADVISORY  WRITE -1 08:01:55 0 EOF\n",
  );
  assert.deepEqual(locks, [
    { kind: "FLOCK", mode: "WRITE", pid: 1735, inode: 2146368 },
    { kind: "POSIX", mode: "READ", pid: 1735, inode: 16039952 },
    { kind: "OFDLCK", mode: "WRITE", pid: -1, inode: 55 },
  ]);
});

Deno.test("parseSocketTable decodes IPv4 and IPv6 addresses, ports and states", () => {
  const v4 =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
    "   0: 0100007F:21C4 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0\n" +
    "   1: 0100007F:9C40 0100007F:21C4 06 00000000:00000000 03:00000F4F 00000000     0        0 0 3 0\n";
  assert.deepEqual(parseSocketTable(v4, 4), [
    {
      family: 4,
      localAddress: "127.0.0.1",
      localPort: 8644,
      remotePort: 0,
      state: "LISTEN",
      uid: 1000,
      inode: 4242,
    },
    {
      family: 4,
      localAddress: "127.0.0.1",
      localPort: 40000,
      remotePort: 8644,
      state: "TIME_WAIT",
      uid: 0,
      inode: 0,
    },
  ]);
  const v6 = "  sl  local_address                         remote_address  st\n" +
    "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 77 1\n" +
    "   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 78 1\n" +
    "   2: 0000000000000000FFFF00000100007F:0051 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 79 1\n" +
    "   3: B80D0120000000000000000001000000:0052 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 80 1\n";
  assert.deepEqual(parseSocketTable(v6, 6).map((e) => [e.localAddress, e.localPort]), [
    ["::1", 8080],
    ["::", 80],
    ["::ffff:127.0.0.1", 81],
    ["2001:db8::1", 82],
  ]);
});

Deno.test("process identity: this process matches itself, a made-up start time does not", async () => {
  const me = await readProcessIdentity(Deno.pid);
  assert.ok(me);
  assert.equal(sameProcess(me, me), true);
  assert.equal(sameProcess(me, { ...me, startTime: "1" }), false);
  assert.equal(await readProcessIdentity(0), null);
});

Deno.test("parseSignal accepts names with or without SIG and common numbers", () => {
  assert.equal(parseSignal("kill"), "SIGKILL");
  assert.equal(parseSignal("SIGTERM"), "SIGTERM");
  assert.equal(parseSignal("9"), "SIGKILL");
  assert.equal(parseSignal("usr1"), "SIGUSR1");
  assert.equal(parseSignal("NOPE"), null);
});

Deno.test("apiUrl connects to loopback for any-address hosts and brackets IPv6", () => {
  assert.equal(apiUrl("127.0.0.1", 8644), "http://127.0.0.1:8644");
  assert.equal(apiUrl("0.0.0.0", 1), "http://127.0.0.1:1");
  assert.equal(apiUrl("::", 2), "http://[::1]:2");
  assert.equal(apiUrl("::1", 3), "http://[::1]:3");
});

Deno.test("readiness lines are recognised only with their prefix", () => {
  assert.equal(parseReadinessLine('{"courier":"ready"}'), null);
  assert.equal(parseReadinessLine(`${READINESS_PREFIX}not json`), null);
  const line =
    `${READINESS_PREFIX}{"courier":"error","exit_code":4,"message":"m","details":[],"type":"X"}`;
  assert.deepEqual(parseReadinessLine(line), {
    courier: "error",
    exit_code: 4,
    message: "m",
    details: [],
    type: "X",
  });
});

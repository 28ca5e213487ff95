import { MailValidationError } from "./errors.ts";
import {
  EVENT_BUFFER_SIZE,
  MAIL_EVENT_TYPES,
  type MailEvent,
  type MailEvents,
  type MailEventType,
} from "./events.ts";

/** Events queued for a client that does not read, after which its stream is closed. */
const MAX_QUEUED = 1000;
/** How long an `EventSource` waits before reconnecting (ms). */
const RECONNECT_MS = 2000;

const encoder = new TextEncoder();

function frame(event: MailEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

function eventTypes(url: URL): Set<MailEventType> | null {
  const raw = url.searchParams.get("types");
  if (raw === null || raw.trim() === "") return null;
  const types = new Set<MailEventType>();
  for (const type of raw.split(",").map((t) => t.trim()).filter(Boolean)) {
    if (!(MAIL_EVENT_TYPES as readonly string[]).includes(type)) {
      throw new MailValidationError(
        "types",
        `unknown event type "${type}": use ${MAIL_EVENT_TYPES.join(", ")}`,
      );
    }
    types.add(type as MailEventType);
  }
  return types;
}

function lastEventId(request: Request, url: URL): number | null {
  const raw = request.headers.get("last-event-id") ?? url.searchParams.get("last_event_id");
  if (raw === null || !/^\d+$/.test(raw.trim())) return null;
  return Number(raw.trim());
}

/**
 * `GET /api/v1/events`: the event stream as Server-Sent Events. Each event
 * is `id: <n>`, `event: <type>`, `data: <the event as JSON>`. A client that
 * reconnects with `Last-Event-ID` (header, or `last_event_id` in the query)
 * first gets the events it missed, if the last {@link EVENT_BUFFER_SIZE}
 * still hold them, else one `reset` event (re-read the state, then follow).
 * `types=mail.new,mail.done` keeps only those types. A comment line every
 * `heartbeatMs` keeps proxies from closing an idle stream. The stream ends
 * when the service stops, and is closed for a client that stopped reading,
 * and at the next heartbeat once `stillAuthorized` turns false (the API
 * token it was opened with was rotated).
 *
 * @throws {MailValidationError} an unknown type in `types` (400).
 */
export function eventStreamResponse(
  events: MailEvents,
  request: Request,
  url: URL,
  options: { heartbeatMs: number; stillAuthorized?: () => boolean },
): Response {
  const types = eventTypes(url);
  const since = lastEventId(request, url);
  let cleanup = () => {};
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      let open = true;
      const close = () => {
        if (!open) return;
        open = false;
        cleanup();
        try {
          controller.close();
        } catch {
          // already closed
        }
      };
      const send = (text: string) => {
        if (!open) return;
        controller.enqueue(encoder.encode(text));
        if ((controller.desiredSize ?? 0) < -MAX_QUEUED) close(); // it reconnects and catches up
      };
      const deliver = (event: MailEvent) => {
        if (!types || types.has(event.type)) send(frame(event));
      };
      send(`retry: ${RECONNECT_MS}\n: courier mail events\n\n`);
      if (since !== null) {
        const missed = events.since(since);
        if (missed.complete) {
          for (const event of missed.events) deliver(event);
        } else {
          const reset = {
            type: "reset",
            last_event_id: since,
            reason: `more than ${EVENT_BUFFER_SIZE} events happened since ${since}, or the ` +
              `daemon restarted: re-read the mails you follow (GET /api/v1/messages)`,
          };
          send(`id: ${events.lastId}\nevent: reset\ndata: ${JSON.stringify(reset)}\n\n`);
        }
      }
      let unsubscribe = () => {};
      let heartbeat: ReturnType<typeof setInterval> | undefined;
      cleanup = () => {
        unsubscribe();
        clearInterval(heartbeat);
      };
      unsubscribe = events.subscribe({ event: deliver, close }); // closes at once after a stop
      const beat = () => {
        if (options.stillAuthorized && !options.stillAuthorized()) close();
        else send(": heartbeat\n\n");
      };
      if (open) heartbeat = setInterval(beat, options.heartbeatMs);
    },
    cancel() {
      cleanup();
    },
  });
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}

/**
 * Ports and sockets: bind probes on IPv4 and IPv6, the kernel's socket
 * tables, who holds a port, and a plain HTTP GET for asking a local daemon.
 *
 * @module
 */
export * from "./http_get.ts";
export * from "./port_holder.ts";
export * from "./port_probe.ts";
export * from "./socket_table.ts";

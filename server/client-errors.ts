import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';

/** The answer to a request Node's HTTP parser refused, by its error code; anything else is a 400. */
const statusOf: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: '413 Content Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/** How long the rest of a refused request is read and dropped before its connection closes. */
const drainMs = 2_000;

/**
 * Answers a request Node's HTTP parser refused (a request head past the size limit, a malformed
 * request) as Node does by default, with one difference: the rest of the request is read and
 * dropped before the connection closes. Closed with unread input, the connection is reset, and the
 * client may lose the answer before it reads it (on Node 24 a 2–200 KB query string did, in most
 * tries): it would see a broken connection instead of a 431.
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // A response already under way on this connection cannot be followed by another one.
    const answering = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage?.headersSent === true;
    if (!socket.writable || answering || error.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    socket.end(`HTTP/1.1 ${statusOf[error.code ?? ''] ?? '400 Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.resume();
    setTimeout(() => socket.destroy(), drainMs).unref();
  });
}

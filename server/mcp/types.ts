/** An upstream MCP server as the `/mcp` endpoint sees it. */
export interface McpUpstream {
  /** Short identifier, the prefix of its tools' names (`<name><separator><tool>`). */
  name: string;
  /** Human-readable name, used in messages shown to the user. */
  displayName: string;
  /** Its Streamable HTTP MCP endpoint. */
  url: string;
}

/** Who is calling `/mcp`, as established by the auth layer in front of it. */
export interface McpCaller {
  userId: string;
  /** The MCP client (OAuth client id) acting for the user. */
  clientId: string;
  /** The upstreams this caller may use right now. */
  upstreams: McpUpstream[];
}

// The two request handlers of the HTTP benchmark (bench/http.mjs), written once for every server
// that takes a web `fetch` handler (Wisp, Deno.serve, Bun.serve); http_node.mjs does the same work
// the way a node:http server does. Plain JavaScript, so that the driver (Node without a loader)
// can check every server's answers against `reply` too.

/** The POST body the generator sends to `json`: 109 bytes of JSON. */
export const REQUEST_BODY = JSON.stringify({
  user: "ada",
  action: "list",
  page: 3,
  filters: { active: true, role: "member" },
  sort: "created",
  limit: 30,
});

/** The records every reply lists: as many as make it at least 4 KiB of JSON. */
const ITEMS = [];
for (let i = 0; JSON.stringify(reply({ user: "ada", page: 3 })).length < 4096; i++) {
  ITEMS.push({
    id: 1000 + i,
    name: `user ${1000 + i}`,
    email: `user${1000 + i}@example.com`,
    role: i % 3 === 0 ? "admin" : "member",
    active: i % 2 === 0,
    created: `2026-12-${String(1 + (i % 28)).padStart(2, "0")}T10:00:00Z`,
  });
}

/**
 * The object `json` answers with, made anew for each request from what it asked for (so that
 * no server can cache the serialized reply).
 * @param {{ user: string, page: number }} request the parsed request body
 */
export function reply(request) {
  return { user: request.user, page: request.page, total: 1200, items: ITEMS };
}

/** (a) hello world. */
export function hello() {
  return new Response("hello world");
}

/**
 * (b) reads the small JSON body and answers with about 4 KiB of JSON.
 * @param {Request} request
 */
export async function json(request) {
  return Response.json(reply(await request.json()));
}

/** The handlers by the name the driver passes on the command line. */
export const handlers = { hello, json };

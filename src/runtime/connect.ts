/**
 * The outgoing-connection adapter for the runtime Wisp is running on, picked in ./mod.ts with the
 * listening one (src/pubsub/redis.ts imports it from here).
 * @module
 */

export { runtimeConnect } from "./mod.ts";

// A chat-like stream of JSON messages for the compression benchmarks: what a chat or a live feed
// pushes to its clients, 80–400 bytes each, the same keys again and again. Deterministic for a
// seed, so every server sends the same bytes. Shapes:
// - the chat demo's own (src/chat/server.ts): `message` {type,name,text,time}, `join`/`leave`
//   {type,name,online,time}, `welcome` (its `error` is shorter than 80 bytes);
// - a live feed: `tick` {type,symbol,price,change,volume,time};
// - presence: `typing` {type,room,user:{id,name},time};
// - `notification` {type,id,user:{id,name,avatar},title,body,read,time}.
// Words are drawn from a small vocabulary with a Zipf-like skew, names from a few users.

const WORDS = (
  "the I you to a and it is that of in we for this on be have do not with just so what are can " +
  "was but my if at me they all get like think know about now no yes ok one out up here there how " +
  "when good see time going really right well will would back today tomorrow thanks great sure " +
  "sounds meeting call later lunch deploy build test release bug fix review merge branch main " +
  "server client socket message please check again works broken again done looks nice cool lol " +
  "anyone else seen this error yesterday morning week update ticket issue link doc slides demo " +
  "café naïve über 👍 🎉 🙂"
).split(" ");
const NAMES = ["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Radia", "Δημήτρης", "Aiko"];
const SYMBOLS = ["ACME", "GLOBX", "INITECH", "UMBR", "HOOLI", "STARK", "WAYNE"];
const ROOMS = ["general", "random", "dev", "ops"];
const encoder = new TextEncoder();

/** A small seeded generator (mulberry32). */
function generator(seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min, max) => min + Math.floor(next() * (max - min + 1));
  const pick = (items) => items[Math.floor(next() * items.length)];
  // Zipf-like: low indices far more often.
  const word = () => WORDS[Math.floor(WORDS.length * next() ** 2.2)];
  return { next, int, pick, word };
}

/** `count` messages (strings) of the stream for `seed`. */
export function chatCorpus(count, seed = 1) {
  const random = generator(seed);
  const prices = new Map(SYMBOLS.map((symbol, i) => [symbol, 40 + 30 * i]));
  const out = [];
  let time = Date.UTC(2026, 11, 6, 9, 0, 0);
  let online = 12;
  let notification = 5000;
  while (out.length < count) {
    time += random.int(0, 4000);
    const at = new Date(time).toISOString();
    const name = random.pick(NAMES);
    const user = { id: `u_${1000 + NAMES.indexOf(name)}`, name };
    const kind = random.next();
    let message;
    if (kind < 0.5) {
      const text = Array.from({ length: random.int(3, 45) }, random.word).join(" ");
      message = { type: "message", name, text, time: at };
    } else if (kind < 0.7) {
      const symbol = random.pick(SYMBOLS);
      const price = prices.get(symbol) * (1 + (random.next() - 0.5) / 100);
      prices.set(symbol, price);
      message = {
        type: "tick",
        symbol,
        price: Math.round(price * 100) / 100,
        change: Math.round((random.next() - 0.5) * 400) / 100,
        volume: random.int(100, 90000),
        time: at,
      };
    } else if (kind < 0.85) {
      message = { type: "typing", room: random.pick(ROOMS), user, time: at };
    } else if (kind < 0.94) {
      message = {
        type: "notification",
        id: `n_${notification++}`,
        user: { ...user, avatar: `https://cdn.example.com/avatars/${user.id}.png` },
        title: `${name} mentioned you in #${random.pick(ROOMS)}`,
        body: Array.from({ length: random.int(4, 20) }, random.word).join(" "),
        read: false,
        time: at,
      };
    } else if (kind < 0.97) {
      message = { type: "join", name, online: ++online, time: at };
    } else if (kind < 0.995) {
      message = { type: "leave", name, online: online = Math.max(1, online - 1), time: at };
    } else {
      message = { type: "welcome", name, online, time: at };
    }
    const text = JSON.stringify(message);
    const bytes = encoder.encode(text).length;
    if (bytes >= 80 && bytes <= 400) out.push(text);
  }
  return out;
}

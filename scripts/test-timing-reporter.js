// A node:test reporter that prints, once the run is over, how long each test file took and the slowest ones, so
// that the suite's time (and what makes it) stays visible in every run. When files run one after another, a file's
// time is from the previous file's last event to its own last event (which counts its start-up); when several run
// at once (COFFER_TEST_CONCURRENCY), from its own first event to its last. A bundled test file
// (scripts/run-tests.js) is counted as its source.
const bundled = /\/node_modules\/\.cache\/coffer-tests\/[^/]+\/(.*)\.js$/;

function sourceOf(file) {
  const match = bundled.exec(file);
  return match === null ? file : `${file.slice(0, match.index)}/${match[1]}.ts`;
}

export default async function* timing(source) {
  const started = Date.now();
  const firstSeen = new Map();
  const lastSeen = new Map();
  for await (const event of source) {
    const file = event.data?.file;
    if (file === undefined) continue;
    const name = sourceOf(file);
    if (!firstSeen.has(name)) firstSeen.set(name, Date.now());
    lastSeen.set(name, Date.now());
  }
  const concurrent = Number(process.env.COFFER_TEST_CONCURRENCY ?? '1') > 1;
  const spans = [];
  let previous = started;
  for (const [file, last] of [...lastSeen.entries()].sort((a, b) => a[1] - b[1])) {
    spans.push({ file, ms: last - (concurrent ? firstSeen.get(file) : previous) });
    previous = last;
  }
  spans.sort((a, b) => b.ms - a.ms);
  const total = Date.now() - started;
  const cwd = process.cwd() + '/';
  let text = `\nTest files by time (${spans.length} files, ${(total / 1000).toFixed(1)} s in all${concurrent ? `, ${process.env.COFFER_TEST_CONCURRENCY} at a time` : ''}):\n`;
  for (const { file, ms } of spans.slice(0, 25)) {
    text += `${(ms / 1000).toFixed(1).padStart(8)} s  ${file.startsWith(cwd) ? file.slice(cwd.length) : file}\n`;
  }
  yield text;
}

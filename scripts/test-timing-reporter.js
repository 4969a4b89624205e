// A node:test reporter that prints, once the run is over, how long each test file took and the slowest ones, so
// that the suite's time (and what makes it) stays visible in every run. When files run one after another, a file's
// time is from the previous file's last event to its own last event (which counts its start-up); when several run
// at once (COFFER_TEST_CONCURRENCY), the sum of its top-level tests' and suites' own durations (its start-up, before
// its first test, is not counted then). A bundled test file
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
  const measured = new Map();
  for await (const event of source) {
    const file = event.data?.file;
    // Every file is enqueued when the run starts; it starts when it is dequeued, which its first other event marks.
    if (file === undefined || event.type === 'test:enqueue') continue;
    const name = sourceOf(file);
    if (!firstSeen.has(name)) firstSeen.set(name, Date.now());
    lastSeen.set(name, Date.now());
    // Files that run at once report in turn, so when their events arrive says little: their top-level tests' and
    // suites' own durations (hooks included) say how long each took.
    if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.nesting === 0) {
      measured.set(name, (measured.get(name) ?? 0) + (event.data.details?.duration_ms ?? 0));
    }
  }
  const concurrent = Number(process.env.COFFER_TEST_CONCURRENCY ?? '1') > 1;
  const spans = [];
  let previous = started;
  for (const [file, last] of [...lastSeen.entries()].sort((a, b) => a[1] - b[1])) {
    spans.push({ file, ms: concurrent ? measured.get(file) ?? last - firstSeen.get(file) : last - previous });
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

// A node:test reporter that prints, once the run is over, how long each test file took and the slowest ones, so
// that the suite's time (and what makes it) stays visible in every run. Files run one after another, so a file's
// time is from the previous file's last event to its own last event. A bundled test file (scripts/run-tests.js) is
// counted as its source.
const bundled = /\/node_modules\/\.cache\/coffer-tests\/[^/]+\/(.*)\.js$/;

function sourceOf(file) {
  const match = bundled.exec(file);
  return match === null ? file : `${file.slice(0, match.index)}/${match[1]}.ts`;
}

export default async function* timing(source) {
  const started = Date.now();
  const lastSeen = new Map();
  for await (const event of source) {
    const file = event.data?.file;
    if (file !== undefined) lastSeen.set(sourceOf(file), Date.now());
  }
  const spans = [];
  let previous = started;
  for (const [file, last] of [...lastSeen.entries()].sort((a, b) => a[1] - b[1])) {
    spans.push({ file, ms: last - previous });
    previous = last;
  }
  spans.sort((a, b) => b.ms - a.ms);
  const total = Date.now() - started;
  const cwd = process.cwd() + '/';
  let text = `\nTest files by time (${spans.length} files, ${(total / 1000).toFixed(1)} s in all):\n`;
  for (const { file, ms } of spans.slice(0, 25)) {
    text += `${(ms / 1000).toFixed(1).padStart(8)} s  ${file.startsWith(cwd) ? file.slice(cwd.length) : file}\n`;
  }
  yield text;
}

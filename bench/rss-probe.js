// Peak-RSS probe, loaded into a measured child with NODE_OPTIONS="--import=<abs>/bench/rss-probe.js".
// On exit it writes process.resourceUsage().maxRSS (KB, the kernel's high-water mark for the whole
// process) to the file named by BENCH_RSS_FILE, followed by the process's user and system CPU
// time (µs): "maxRSS user system". It is used the same way for doorctl and for every
// floor, so both sides carry the same (tiny) cost of loading it.
import { writeFileSync } from 'node:fs'

const file = process.env.BENCH_RSS_FILE
if (file) {
  // Only the process it was meant for: children of the measured process do not inherit the target.
  delete process.env.BENCH_RSS_FILE
  process.on('exit', () => {
    try {
      const u = process.resourceUsage()
      writeFileSync(file, `${u.maxRSS} ${u.userCPUTime} ${u.systemCPUTime}`)
    } catch {
      // the bench reports a missing value; the measured process must not fail because of the probe
    }
  })
}

/** A deterministic valid ref (20 lowercase letters) for an integer. */
export function refOf(n: number): string {
  let s = "";
  let v = n;
  for (let k = 0; k < 20; k++) {
    s += String.fromCharCode(97 + (v % 26));
    v = Math.floor(v / 26);
  }
  return s;
}

/** Reads `map $host $grafana_upstream { … }` back out of a rendered config. */
export function parseUpstreamMap(config: string): Map<string, string> {
  const block = /map \$host \$grafana_upstream \{\n([\s\S]*?)\n\s*\}/.exec(config);
  if (block === null) throw new Error("upstream map not found");
  const out = new Map<string, string>();
  for (const raw of (block[1] ?? "").split("\n")) {
    const line = raw.trim();
    if (line === 'default "";') continue;
    const m = /^(\S+) (\S+);$/.exec(line);
    if (m === null) throw new Error(`unexpected map line: ${line}`);
    out.set(m[1] ?? "", m[2] ?? "");
  }
  return out;
}

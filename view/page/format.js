// Numbers and times as the page shows them.

export function reward(value) {
  if (value === undefined || value === null || Number.isNaN(value)) return '–';
  const a = Math.abs(value);
  return a !== 0 && (a >= 1e5 || a < 1e-3) ? value.toExponential(2) : value.toFixed(a >= 100 ? 1 : 3);
}

export function count(value) {
  return value === undefined || value === null ? '–' : Math.round(value).toLocaleString('en-US');
}

export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export function percent(share) {
  return Number.isFinite(share) ? `${Math.round(share * 100)} %` : '–';
}

export function when(iso) {
  if (!iso) return '–';
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? '–' : t.toLocaleString();
}

export function metrics(values) {
  return Object.entries(values ?? {}).map(([name, v]) => `${name} ${reward(v)}`).join(', ');
}

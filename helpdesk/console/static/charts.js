// Small SVG charts drawn by hand: a Pareto chart and daily line charts. Labels are text nodes.
const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function frame(width, height, label) {
  return s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'chart', role: 'img', 'aria-label': label });
}

const COLORS = { bar: '#8aa4d6', vital: '#2456c9', line: '#d9480f', eighty: '#5f6b7a', a: '#2456c9', b: '#1f7a3a' };

// Bars by count (vital few darker), the cumulative share line, and the 80% line.
export function pareto(items, { width = 560, height = 210 } = {}) {
  const svg = frame(width, height, 'Pareto chart of contact reasons');
  const pad = { l: 36, r: 40, t: 12, b: 54 };
  const w = width - pad.l - pad.r;
  const hgt = height - pad.t - pad.b;
  const max = Math.max(1, ...items.map((i) => i.count));
  const y = (count) => pad.t + hgt - (count / max) * hgt;
  const yShare = (share) => pad.t + hgt - share * hgt;
  svg.append(s('line', { x1: pad.l, y1: pad.t + hgt, x2: pad.l + w, y2: pad.t + hgt, stroke: '#b9c0ca' }));
  svg.append(s('text', { x: 4, y: pad.t + 8 }, String(max)), s('text', { x: 4, y: pad.t + hgt }, '0'));
  svg.append(s('text', { x: pad.l + w + 4, y: pad.t + 8 }, '100%'));
  const eighty = yShare(0.8);
  svg.append(s('line', { x1: pad.l, y1: eighty, x2: pad.l + w, y2: eighty, stroke: COLORS.eighty, 'stroke-dasharray': '4 3' }),
    s('text', { x: pad.l + w + 4, y: eighty + 4 }, '80%'));
  if (!items.length) {
    svg.append(s('text', { x: pad.l + w / 2 - 60, y: pad.t + hgt / 2 }, 'No solved tickets with a reason'));
    return svg;
  }
  const step = w / items.length;
  const barW = Math.min(56, Math.max(4, step * 0.7));
  const points = [];
  items.forEach((item, i) => {
    const x = pad.l + i * step + (step - barW) / 2;
    const bar = s('rect', { x, y: y(item.count), width: barW, height: pad.t + hgt - y(item.count),
      fill: item.vital_few ? COLORS.vital : COLORS.bar });
    bar.append(s('title', {}, `${item.reason}: ${item.count} (${Math.round(item.share * 100)}%)${item.vital_few ? ', vital few' : ''}`));
    svg.append(bar);
    const label = item.reason.length > 12 ? `${item.reason.slice(0, 11)}…` : item.reason;
    svg.append(s('text', { x: x + barW / 2, y: pad.t + hgt + 14, 'text-anchor': 'end',
      transform: `rotate(-30 ${x + barW / 2} ${pad.t + hgt + 14})` }, label));
    points.push(`${x + barW / 2},${yShare(item.cumulative_share)}`);
  });
  svg.append(s('polyline', { points: points.join(' '), fill: 'none', stroke: COLORS.line, 'stroke-width': 2 }));
  for (const p of points) {
    const [cx, cy] = p.split(',');
    svg.append(s('circle', { cx, cy, r: 3, fill: COLORS.line }));
  }
  return svg;
}

// One or two series over days; null values leave gaps.
export function lines(days, series, { width = 360, height = 160, format = String, label = 'trend' } = {}) {
  const svg = frame(width, height, label);
  const pad = { l: 44, r: 8, t: 10, b: 26 };
  const w = width - pad.l - pad.r;
  const hgt = height - pad.t - pad.b;
  const values = series.flatMap((se) => se.values).filter((v) => v !== null && v !== undefined);
  const max = Math.max(...values, 0) || 1;
  const x = (i) => pad.l + (days.length <= 1 ? w / 2 : (i / (days.length - 1)) * w);
  const y = (v) => pad.t + hgt - (v / max) * hgt;
  svg.append(s('line', { x1: pad.l, y1: pad.t + hgt, x2: pad.l + w, y2: pad.t + hgt, stroke: '#b9c0ca' }));
  svg.append(s('text', { x: 2, y: pad.t + 8 }, format(max)), s('text', { x: 2, y: pad.t + hgt }, format(0)));
  if (days.length) {
    svg.append(s('text', { x: pad.l, y: height - 6 }, days[0].slice(5)));
    if (days.length > 1) svg.append(s('text', { x: pad.l + w, y: height - 6, 'text-anchor': 'end' }, days[days.length - 1].slice(5)));
  }
  if (!values.length) svg.append(s('text', { x: pad.l + w / 2 - 30, y: pad.t + hgt / 2 }, 'No data yet'));
  for (const se of series) {
    let path = '';
    se.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      path += `${path && se.values[i - 1] != null ? 'L' : 'M'}${x(i)},${y(v)} `;
      const dot = s('circle', { cx: x(i), cy: y(v), r: 2.5, fill: se.color });
      dot.append(s('title', {}, `${days[i]}: ${format(v)}`));
      svg.append(dot);
    });
    if (path) svg.append(s('path', { d: path, fill: 'none', stroke: se.color, 'stroke-width': 2 }));
  }
  return svg;
}

export { COLORS };

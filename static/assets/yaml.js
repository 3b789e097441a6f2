// A small YAML reader for the subset `static/openapi.yaml` is written in:
// block mappings and sequences by indentation, `|` and `>` block scalars,
// single-line flow collections (`{ a: 1 }`, `[a, b]`), quoted and plain
// scalars, comments. No anchors, tags or multi-document streams. The docs
// page reads the description with it so that nothing has to be built or
// downloaded to serve `/docs`; tests/browser checks it against a full YAML
// parser on the real file.

export function parseYaml(text) {
  const lines = text.replace(/\r\n?/g, '\n').split('\n').map((raw) => ({ raw, indent: raw.match(/^ */)[0].length, body: raw.trim() }));
  let i = 0;

  const isSkippable = (l) => l.body === '' || l.body.startsWith('#');
  function skip() { while (i < lines.length && isSkippable(lines[i])) i++; }

  function parseNode(indent) {
    skip();
    if (i >= lines.length) return null;
    const l = lines[i];
    if (l.indent < indent) return null;
    if (l.body === '-' || l.body.startsWith('- ')) return parseSeq(l.indent);
    return parseMap(l.indent);
  }

  function parseSeq(indent) {
    const out = [];
    for (;;) {
      skip();
      if (i >= lines.length) break;
      const l = lines[i];
      if (l.indent !== indent || !(l.body === '-' || l.body.startsWith('- '))) break;
      const rest = l.body.slice(1).trim();
      if (rest === '') { i++; out.push(parseNode(indent + 1)); continue; }
      if (looksLikeKey(rest)) {
        // "- key: value": a mapping whose first entry shares the dash's line.
        const inner = indent + 2;
        lines[i] = { raw: ' '.repeat(inner) + rest, indent: inner, body: rest };
        out.push(parseMap(inner));
      } else {
        i++;
        out.push(scalarOrFlow(rest, indent));
      }
    }
    return out;
  }

  function parseMap(indent) {
    const out = {};
    for (;;) {
      skip();
      if (i >= lines.length) break;
      const l = lines[i];
      if (l.indent !== indent || l.body.startsWith('- ')) break;
      const [key, rest] = splitKey(l.body);
      if (key === null) throw new Error(`YAML: expected "key: value" at line ${i + 1}: ${l.raw}`);
      i++;
      if (rest === '') {
        skip();
        const next = lines[i];
        if (next && (next.indent > indent || (next.indent === indent && next.body.startsWith('- ')))) out[key] = parseNode(next.indent);
        else out[key] = null;
      } else if (/^[|>][-+]?$/.test(rest)) {
        out[key] = blockScalar(indent, rest);
      } else {
        out[key] = scalarOrFlow(rest, indent);
      }
    }
    return out;
  }

  function blockScalar(indent, header) {
    const collected = [];
    let blockIndent = null;
    while (i < lines.length) {
      const l = lines[i];
      if (l.body !== '') {
        if (l.indent <= indent) break;
        if (blockIndent === null) blockIndent = l.indent;
        if (l.indent < blockIndent) break;
      }
      collected.push(l.body === '' ? '' : l.raw.slice(blockIndent));
      i++;
    }
    while (collected.length && collected[collected.length - 1] === '') collected.pop();
    let text;
    if (header[0] === '>') {
      text = collected.reduce((acc, line, n) => (n === 0 ? line : acc + (line === '' ? '\n' : acc.endsWith('\n') || line.startsWith(' ') ? line : ' ' + line)), '');
    } else {
      text = collected.join('\n');
    }
    return header.endsWith('-') ? text : text + '\n';
  }

  /** A plain scalar may continue on more-indented lines (folded with spaces). */
  function scalarOrFlow(text, indent) {
    text = stripComment(text);
    if (text.startsWith('{') || text.startsWith('[')) return parseFlow(text);
    if (!text.startsWith('"') && !text.startsWith("'")) {
      while (i < lines.length && lines[i].body !== '' && lines[i].indent > indent && !lines[i].body.startsWith('#')) {
        text += ' ' + lines[i].body;
        i++;
      }
    }
    return scalar(text);
  }

  skip();
  return parseNode(0);
}

function stripComment(text) {
  if (text.startsWith('"') || text.startsWith("'")) return text;
  const m = text.match(/\s#.*$/);
  return m ? text.slice(0, m.index).trimEnd() : text;
}

function looksLikeKey(text) {
  return splitKey(text)[0] !== null;
}

/** `key: rest` → [key, rest]; [null] when the text is not a mapping entry. */
function splitKey(text) {
  let key, rest;
  if (text.startsWith('"') || text.startsWith("'")) {
    const q = text[0];
    let j = 1;
    while (j < text.length && !(text[j] === q && text[j + 1] !== q)) j += text[j] === q ? 2 : 1;
    if (!text.slice(j + 1).startsWith(':')) return [null];
    key = scalar(text.slice(0, j + 1));
    rest = text.slice(j + 2);
  } else {
    const m = text.match(/^([^#{[\]},'"][^:]*?):(?:\s+|$)/);
    if (!m || m[1].includes(': ')) return [null];
    key = m[1].trim();
    rest = text.slice(m[0].length);
  }
  return [String(key), rest.trim()];
}

function scalar(text) {
  if (text.startsWith('"')) return JSON.parse(text.replace(/\\\//g, '/'));
  if (text.startsWith("'")) return text.slice(1, -1).replace(/''/g, "'");
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (text === 'null' || text === '~' || text === '') return null;
  if (/^-?(0|[1-9]\d*)$/.test(text)) return Number(text);
  if (/^-?\d+\.\d+$/.test(text)) return Number(text);
  return text;
}

/** A one-line flow collection: `{ a: 1, b: [x, y] }`. */
function parseFlow(text) {
  let p = 0;
  const ws = () => { while (p < text.length && text[p] === ' ') p++; };
  function value() {
    ws();
    if (text[p] === '{') {
      p++;
      const out = {};
      ws();
      while (text[p] !== '}') {
        const k = item(true);
        ws();
        if (text[p] === ':') { p++; out[k] = value(); } else out[k] = null;
        ws();
        if (text[p] === ',') p++;
        ws();
        if (p >= text.length) throw new Error('YAML: unclosed { in ' + text);
      }
      p++;
      return out;
    }
    if (text[p] === '[') {
      p++;
      const out = [];
      ws();
      while (text[p] !== ']') {
        out.push(value());
        ws();
        if (text[p] === ',') p++;
        ws();
        if (p >= text.length) throw new Error('YAML: unclosed [ in ' + text);
      }
      p++;
      return out;
    }
    return item(false);
  }
  function item(isKey) {
    ws();
    if (text[p] === '"' || text[p] === "'") {
      const q = text[p];
      let j = p + 1;
      while (j < text.length) {
        if (q === '"' && text[j] === '\\') { j += 2; continue; }
        if (text[j] === q) { if (q === "'" && text[j + 1] === "'") { j += 2; continue; } break; }
        j++;
      }
      const s = scalar(text.slice(p, j + 1));
      p = j + 1;
      return s;
    }
    let j = p;
    while (j < text.length && !',]}'.includes(text[j]) && !(text[j] === ':' && (text[j + 1] === ' ' || (isKey && ',]}'.includes(text[j + 1] || ''))))) j++;
    const s = text.slice(p, j).trim();
    p = j;
    return isKey ? s : scalar(s);
  }
  return value();
}

// /docs: the OpenAPI description rendered for people, read from
// /openapi.yaml at page load so it can never drift from the spec: endpoints
// grouped by service (tag), parameters, request and response schemas, the
// error envelope and authentication.

import { parseYaml } from './yaml.js';
import { html, raw, esc, markup } from './format.js';

const app = document.getElementById('app');
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** Just enough Markdown for the spec's descriptions: paragraphs, lists, `code`, **bold**, links. */
function md(text) {
  if (!text) return raw('');
  const inline = (s) => esc(s)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, '<a href="$2">$1</a>');
  const blocks = String(text).trim().split(/\n\s*\n/);
  return raw(blocks.map((b) => {
    const lines = b.split('\n');
    if (lines.every((l) => /^\s*([-*]|\d+\.)\s/.test(l) || /^\s{2,}\S/.test(l))) {
      const items = [];
      for (const l of lines) {
        if (/^\s*([-*]|\d+\.)\s/.test(l)) items.push(l.replace(/^\s*([-*]|\d+\.)\s/, ''));
        else items[items.length - 1] += ' ' + l.trim();
      }
      return '<ul>' + items.map((i) => `<li>${inline(i)}</li>`).join('') + '</ul>';
    }
    return `<p>${inline(b)}</p>`;
  }).join(''));
}

const refName = (ref) => ref.split('/').pop();
const anchor = (kind, name) => `${kind}-${String(name).replace(/[^A-Za-z0-9_-]/g, '-')}`;

function typeOf(s) {
  if (!s) return raw('');
  if (s.$ref) return html`<a href="#${anchor('schema', refName(s.$ref))}">${refName(s.$ref)}</a>`;
  for (const k of ['oneOf', 'anyOf', 'allOf']) {
    if (s[k]) return raw(s[k].map((x) => markup(typeOf(x))).join(k === 'allOf' ? ' & ' : ' | '));
  }
  if (s.type === 'array' || (Array.isArray(s.type) && s.type.includes('array'))) return html`array of ${typeOf(s.items)}`;
  let t = Array.isArray(s.type) ? s.type.join(' | ') : s.type || 'any';
  if (s.format) t += ` (${s.format})`;
  if (s.enum) t += ': ' + s.enum.join(', ');
  if (s.const !== undefined) t += ` = ${s.const}`;
  return html`${t}`;
}

function schemaTable(s, spec) {
  if (!s) return raw('');
  if (s.$ref) return html`<p>${typeOf(s)}</p>`;
  if (s.allOf || s.oneOf || s.anyOf) {
    const k = s.allOf ? 'allOf' : s.oneOf ? 'oneOf' : 'anyOf';
    const label = { allOf: 'All of', oneOf: 'One of', anyOf: 'Any of' }[k];
    return html`<p>${label}:</p><ul>${s[k].map((x) => html`<li>${x.$ref ? typeOf(x) : schemaTable(x, spec)}</li>`)}</ul>`;
  }
  if (s.properties) {
    const required = new Set(s.required || []);
    return html`${md(s.description)}<div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">Field</th><th scope="col">Type</th><th scope="col">Description</th></tr></thead><tbody>
      ${Object.entries(s.properties).map(([name, p]) => html`<tr><td><code>${name}</code>${required.has(name) ? html` <span class="badge">required</span>` : ''}</td><td>${typeOf(p)}</td><td>${md(p.description)}</td></tr>`)}
    </tbody></table></div>`;
  }
  return html`<p>${typeOf(s)}</p>${md(s.description)}`;
}

function deref(obj, spec) {
  let o = obj;
  for (let n = 0; o && o.$ref && n < 5; n++) {
    const target = o.$ref.replace(/^#\//, '').split('/').reduce((acc, k) => (acc ? acc[k] : undefined), spec);
    o = { ...target, ...Object.fromEntries(Object.entries(o).filter(([k]) => k !== '$ref')) };
  }
  return o;
}

function operation(path, method, op, spec, shared) {
  const params = [...(shared || []), ...(op.parameters || [])].map((p) => deref(p, spec));
  const body = op.requestBody && deref(op.requestBody, spec);
  const secured = (op.security || spec.security || []).some((s) => Object.keys(s).length > 0);
  const optional = (op.security || []).some((s) => Object.keys(s).length === 0);
  return html`<section class="box stack" id="${anchor('op', op.operationId || method + path)}">
    <h3><span class="badge">${method.toUpperCase()}</span> <code>${path}</code></h3>
    <p><strong>${op.summary || ''}</strong>${secured ? html` <span class="badge warn">${optional ? 'bearer token optional' : 'bearer token'}</span>` : ''}</p>
    ${md(op.description)}
    ${params.length ? html`<h4>Parameters</h4><div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">Name</th><th scope="col">In</th><th scope="col">Type</th><th scope="col">Description</th></tr></thead><tbody>
      ${params.map((p) => html`<tr><td><code>${p.name}</code>${p.required ? html` <span class="badge">required</span>` : ''}</td><td>${p.in}</td><td>${typeOf(p.schema)}</td><td>${md(p.description)}</td></tr>`)}</tbody></table></div>` : ''}
    ${body ? html`<h4>Request body</h4>${md(body.description)}${Object.entries(body.content || {}).map(([type, c]) => html`<p class="muted">${type}</p>${schemaTable(c.schema, spec)}`)}` : ''}
    <h4>Responses</h4>
    <div class="table-wrap" tabindex="0"><table><thead><tr><th scope="col">Status</th><th scope="col">Body</th><th scope="col">Meaning</th></tr></thead><tbody>
      ${Object.entries(op.responses || {}).map(([code, r0]) => {
        const r = deref(r0, spec);
        const schema = r.content && Object.values(r.content)[0] && Object.values(r.content)[0].schema;
        return html`<tr><td><code>${code}</code></td><td>${schema ? typeOf(schema) : ''}</td><td>${md(r.description)}</td></tr>`;
      })}
    </tbody></table></div>
  </section>`;
}

async function main() {
  let spec;
  try {
    const r = await fetch('/openapi.yaml');
    if (!r.ok) throw new Error(`GET /openapi.yaml: ${r.status}`);
    spec = parseYaml(await r.text());
  } catch (e) {
    app.innerHTML = markup(html`<h1>API documentation</h1><div class="notice error" role="alert">The description could not be loaded: ${e.message}. It is at <a href="/openapi.yaml">/openapi.yaml</a>.</div>`);
    return;
  }
  const tags = (spec.tags || []).map((t) => t.name);
  const byTag = new Map(tags.map((t) => [t, []]));
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const m of METHODS) {
      if (!item[m]) continue;
      const tag = (item[m].tags || ['other'])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, m, item[m], item.parameters]);
    }
  }
  const schemas = (spec.components && spec.components.schemas) || {};
  const security = (spec.components && spec.components.securitySchemes) || {};
  document.title = `${spec.info.title} ${spec.info.version} · API documentation`;
  app.innerHTML = markup(html`
    <h1>${spec.info.title} <span class="muted">${spec.info.version}</span></h1>
    <p>${spec.info.summary || ''} Rendered from <a href="/openapi.yaml">/openapi.yaml</a>.</p>
    <nav aria-label="Contents" class="box"><h2>Contents</h2><ul>
      <li><a href="#overview">Overview, errors and money</a></li><li><a href="#auth">Authentication</a></li>
      ${[...byTag.keys()].map((t) => html`<li><a href="#${anchor('tag', t)}">${t}</a> (${byTag.get(t).length})</li>`)}
      <li><a href="#schemas">Schemas</a></li></ul></nav>
    <section id="overview"><h2>Overview</h2>${md(spec.info.description)}
      ${schemas.Error ? html`<h3>The error envelope</h3>${schemaTable(schemas.Error, spec)}` : ''}</section>
    <section id="auth"><h2>Authentication</h2>${Object.entries(security).map(([name, s]) => html`<h3><code>${name}</code> <span class="muted">${s.type}${s.scheme ? ' ' + s.scheme : ''}${s.in ? ' in ' + s.in : ''}</span></h3>${md(s.description)}`)}</section>
    ${[...byTag.entries()].map(([tag, ops]) => {
      const t = (spec.tags || []).find((x) => x.name === tag);
      return html`<section id="${anchor('tag', tag)}"><h2>${tag}</h2>${md(t && t.description)}${ops.map(([p, m, op, shared]) => operation(p, m, op, spec, shared))}</section>`;
    })}
    <section id="schemas"><h2>Schemas</h2>${Object.entries(schemas).map(([name, s]) => html`<section class="box" id="${anchor('schema', name)}"><h3>${name}</h3>${schemaTable(s, spec)}</section>`)}</section>
  `);
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

main();

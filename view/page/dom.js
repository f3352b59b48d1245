// Building the page's elements. Every string shown goes in as a text node (textContent): nothing the
// server sends (a prompt is user text) is ever parsed as HTML.

const SVG = 'http://www.w3.org/2000/svg';

/** An element: h('td', { class: 'x', title: 'y' }, 'text', child, ...). Attributes are set, never HTML. */
export function h(tag, attributes = {}, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attributes);
  append(el, children);
  return el;
}

/** An SVG element, the same way. */
export function s(tag, attributes = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttributes(el, attributes);
  append(el, children);
  return el;
}

function setAttributes(el, attributes) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, String(value));
  }
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export const $ = (id) => document.getElementById(id);

export function show(el, visible) {
  el.hidden = !visible;
}

// How LINE draws a message (text, image, sticker, Flex bubble or carousel, template), as DOM.
// One file, loaded by the simulator console (linesim, which serves this same file) and by the staff
// dashboard's broadcast preview; it lives in the bot package because production has no simulator.
// Strings from messages reach the page through textContent or a checked style value, never as markup.
//
//   LineRender.use({ tap(uid, action), text(uid, text, ctx) -> nodes, media(url) -> src or "" })
//   LineRender.renderMessage(message, uid, ctx)   ctx = LineRender.context(): what the message showed
//   LineRender.h(tag, props, ...children)         the element builder both pages use
"use strict";

const LineRender = (() => {
  /** Build an element; children may be nodes or strings (always inserted as text). */
  function h(tag, props = {}, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "style") Object.assign(el.style, value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // what the page does with a tap, a text (links) and a media URL; a page without hooks shows, inert
  const hooks = {
    tap: () => {},
    text: (uid, text) => [String(text)],
    media: (url) => (typeof url === "string" && /^https:\/\//i.test(url) ? url : ""),
  };

  function use(given) {
    Object.assign(hooks, given);
  }

  /** What a rendered message showed: the links written in its texts, the images it drew. */
  const context = () => ({ inline: new Set(), images: [] });

  // ---- rendering: Flex -------------------------------------------------------------------------------
  const SPACING = { none: 0, xs: 2, sm: 4, md: 8, lg: 12, xl: 16, xxl: 20 };
  const TEXT_SIZE = { xxs: 11, xs: 12, sm: 13, md: 15, lg: 17, xl: 20, xxl: 24, "3xl": 30, "4xl": 40, "5xl": 56 };
  const IMAGE_SIZE = { xxs: 40, xs: 60, sm: 80, md: 100, lg: 120, xl: 140, xxl: 160, "3xl": 180, "4xl": 200, "5xl": 220 };
  const ICON_SIZE = { xxs: 11, xs: 12, sm: 13, md: 15, lg: 17, xl: 20, xxl: 24, "3xl": 30, "4xl": 40, "5xl": 56 };
  const BUBBLE_WIDTH = { nano: 120, micro: 160, deca: 220, hecto: 241, kilo: 260, mega: 300, giga: 386 };

  function length(value, table) {
    if (value === undefined || value === null) return undefined;
    if (table && Object.prototype.hasOwnProperty.call(table, value)) return table[value] + "px";
    return /^-?\d+(\.\d+)?(px|%)$/.test(String(value)) ? String(value) : undefined;
  }

  function color(value) {
    return /^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$/.test(String(value)) ? String(value) : undefined;
  }

  function flexValue(comp, parentLayout) {
    const grow = comp.flex !== undefined ? Number(comp.flex) : (parentLayout === "vertical" ? 0 : 1);
    return grow > 0 ? `${grow} 1 0` : "0 0 auto";
  }

  /** Layout properties shared by every component. */
  function common(el, comp, parentLayout, isFirst, parentSpacing) {
    el.style.flex = flexValue(comp, parentLayout);
    const margin = length(comp.margin, SPACING) ?? (isFirst ? undefined : parentSpacing);
    if (margin) el.style[parentLayout === "vertical" ? "marginTop" : "marginLeft"] = margin;
    if (comp.position === "absolute") el.style.position = "absolute";
    for (const [key, css] of [["offsetTop", "top"], ["offsetBottom", "bottom"], ["offsetStart", "left"], ["offsetEnd", "right"]]) {
      const v = length(comp[key], SPACING);
      if (v) { el.style[css] = v; if (comp.position !== "absolute") el.style.position = "relative"; }
    }
    if (comp.gravity === "center") el.style.alignSelf = "center";
    else if (comp.gravity === "bottom") el.style.alignSelf = "flex-end";
    return el;
  }

  function tappable(el, uid, action) {
    if (!action) return el;
    el.classList.add("tappable");
    el.title = action.label || action.uri || action.data || action.text || "";
    el.addEventListener("click", (ev) => { ev.stopPropagation(); hooks.tap(uid, action); });
    return el;
  }

  function renderComponent(comp, uid, ctx, parentLayout = "vertical", isFirst = true, parentSpacing) {
    if (!comp || typeof comp !== "object") return h("span");
    const type = comp.type;
    if (type === "box") return renderBox(comp, uid, ctx, parentLayout, isFirst, parentSpacing);
    if (type === "text") return renderFlexText(comp, uid, ctx, parentLayout, isFirst, parentSpacing);
    if (type === "button") {
      const style = comp.style || "link";
      const btn = h("button", { type: "button", class: `fx-button ${style} ${comp.height === "sm" ? "sm" : ""}` },
        (comp.action && comp.action.label) || "");
      const c = color(comp.color);
      if (c) { if (style === "link") btn.style.color = c; else btn.style.background = c; }
      if (comp.action && comp.action.type === "uri") btn.dataset.uri = comp.action.uri;
      btn.addEventListener("click", (ev) => { ev.stopPropagation(); hooks.tap(uid, comp.action); });
      return common(btn, comp, parentLayout, isFirst, parentSpacing);
    }
    if (type === "image") {
      const wrap = h("div", { class: "fx-image" });
      const src = hooks.media(comp.url);
      const img = h("img", { alt: "image", loading: "lazy", class: "msg-image" });
      if (src) { img.src = src; img.dataset.src = comp.url; }
      const width = comp.size === "full" ? "100%" : (length(comp.size, IMAGE_SIZE) || "100px");
      wrap.style.width = width;
      wrap.style.maxWidth = "100%";
      const [w, hgt] = String(comp.aspectRatio || "1:1").split(":").map(Number);
      if (w > 0 && hgt > 0) wrap.style.aspectRatio = `${w} / ${hgt}`;
      img.style.objectFit = comp.aspectMode === "cover" ? "cover" : "contain";
      const bg = color(comp.backgroundColor);
      if (bg) wrap.style.background = bg;
      wrap.append(img);
      if (comp.align === "start") wrap.style.alignSelf = "flex-start";
      else if (comp.align === "end") wrap.style.alignSelf = "flex-end";
      else wrap.style.alignSelf = "center";
      if (comp.url) ctx.images.push(comp.url);
      return tappable(common(wrap, comp, parentLayout, isFirst, parentSpacing), uid, comp.action);
    }
    if (type === "separator") {
      const sep = h("div", { class: "fx-separator " + (parentLayout === "vertical" ? "h" : "v") });
      const c = color(comp.color);
      if (c) sep.style.background = c;
      const margin = length(comp.margin, SPACING);
      if (margin) sep.style[parentLayout === "vertical" ? "marginTop" : "marginLeft"] = margin;
      return sep;
    }
    if (type === "filler") return h("div", { class: "fx-filler", style: { flex: comp.flex !== undefined ? `${Number(comp.flex)} 1 0` : "1 1 0" } });
    if (type === "spacer") return h("div", { class: "fx-filler", style: { flex: `0 0 ${length(comp.size, SPACING) || "8px"}` } });
    if (type === "icon") {
      const img = h("img", { class: "fx-icon", alt: "" });
      const src = hooks.media(comp.url);
      if (src) img.src = src;
      img.style.height = img.style.width = length(comp.size, ICON_SIZE) || "15px";
      return common(img, comp, parentLayout, isFirst, parentSpacing);
    }
    return common(h("div", { class: "fx-unknown" }, `[${String(type)}]`), comp, parentLayout, isFirst, parentSpacing);
  }

  function renderBox(comp, uid, ctx, parentLayout, isFirst, parentSpacing) {
    const layout = comp.layout || "vertical";
    const box = h("div", { class: `fx-box ${layout}` });
    const spacing = length(comp.spacing, SPACING);
    (comp.contents || []).forEach((child, i) =>
      box.append(renderComponent(child, uid, ctx, layout, i === 0, spacing)));
    const bg = color(comp.backgroundColor) || (comp.background && color(comp.background.startColor));
    if (bg) box.style.background = bg;
    const border = color(comp.borderColor);
    if (border) box.style.border = `${length(comp.borderWidth, { none: 0, light: 0.5, normal: 1, medium: 2, "semi-bold": 3, bold: 4 }) || "1px"} solid ${border}`;
    const radius = length(comp.cornerRadius, SPACING);
    if (radius) box.style.borderRadius = radius;
    for (const [key, css] of [["paddingAll", "padding"], ["paddingTop", "paddingTop"], ["paddingBottom", "paddingBottom"],
      ["paddingStart", "paddingLeft"], ["paddingEnd", "paddingRight"]]) {
      const v = length(comp[key], SPACING);
      if (v) box.style[css] = v;
    }
    for (const key of ["width", "maxWidth", "height", "maxHeight"]) {
      const v = length(comp[key]);
      if (v) box.style[key] = v;
    }
    const JUSTIFY = { "flex-start": "flex-start", center: "center", "flex-end": "flex-end", "space-between": "space-between", "space-around": "space-around", "space-evenly": "space-evenly" };
    if (JUSTIFY[comp.justifyContent]) box.style.justifyContent = JUSTIFY[comp.justifyContent];
    if (JUSTIFY[comp.alignItems]) box.style.alignItems = JUSTIFY[comp.alignItems];
    return tappable(common(box, comp, parentLayout, isFirst, parentSpacing), uid, comp.action);
  }

  function styleText(el, comp) {
    const size = length(comp.size, TEXT_SIZE);
    if (size) el.style.fontSize = size;
    if (comp.weight === "bold") el.style.fontWeight = "bold";
    if (comp.style === "italic") el.style.fontStyle = "italic";
    if (comp.decoration === "underline" || comp.decoration === "line-through") el.style.textDecoration = comp.decoration;
    const c = color(comp.color);
    if (c) el.style.color = c;
  }

  function renderFlexText(comp, uid, ctx, parentLayout, isFirst, parentSpacing) {
    const el = h("div", { class: "fx-text" + (comp.wrap ? " wrap" : "") });
    if (Array.isArray(comp.contents) && comp.contents.length) {
      for (const span of comp.contents) {
        const s = h("span", {}, span.text || "");
        styleText(s, span);
        el.append(s);
      }
    } else {
      el.append(...hooks.text(uid, comp.text || "", ctx));
    }
    styleText(el, comp);
    if (["start", "center", "end"].includes(comp.align)) el.style.textAlign = comp.align === "end" ? "right" : comp.align === "start" ? "left" : "center";
    if (comp.maxLines > 0 && comp.wrap) { el.classList.add("clamp"); el.style.webkitLineClamp = String(comp.maxLines); }
    const lineSpacing = length(comp.lineSpacing);
    if (lineSpacing) el.style.lineHeight = `calc(1.4em + ${lineSpacing})`;
    return tappable(common(el, comp, parentLayout, isFirst, parentSpacing), uid, comp.action);
  }

  function renderBubble(bubble, uid, ctx) {
    const el = h("div", { class: "fx-bubble" });
    el.style.width = (BUBBLE_WIDTH[bubble.size] || BUBBLE_WIDTH.mega) + "px";
    const styles = bubble.styles || {};
    for (const part of ["header", "hero", "body", "footer"]) {
      const comp = bubble[part];
      if (!comp) continue;
      const section = h("div", { class: "fx-" + part });
      const root = renderComponent(comp, uid, ctx, "vertical", true);
      // as in LINE, a block's padding belongs to its root box: that box's background fills the block
      if (comp.type === "box") root.classList.add("fx-root");
      section.append(root);
      const st = styles[part] || {};
      const bg = color(st.backgroundColor);
      if (bg) section.style.background = bg;
      if (st.separator && part !== "header") section.style.borderTop = `1px solid ${color(st.separatorColor) || "#e0e0e0"}`;
      el.append(section);
    }
    return tappable(el, uid, bubble.action);
  }

  function renderFlex(message, uid, ctx) {
    const contents = message.contents || {};
    if (contents.type === "carousel") {
      return h("div", { class: "carousel" }, (contents.contents || []).map((b) => renderBubble(b, uid, ctx)));
    }
    if (contents.type === "bubble") return renderBubble(contents, uid, ctx);
    return h("div", { class: "bubble bot unknown" }, `[flex: ${String(contents.type)}]`);
  }

  // ---- rendering: templates -----------------------------------------------------------------------------
  function actionButton(action, uid) {
    const btn = h("button", { type: "button", class: "tpl-action" }, (action && action.label) || "");
    if (action && action.type === "uri") btn.dataset.uri = action.uri;
    btn.addEventListener("click", () => hooks.tap(uid, action));
    return btn;
  }

  function templateCard(col, uid, ctx, opts = {}) {
    const card = h("div", { class: "tpl-card" });
    const thumb = col.thumbnailImageUrl || col.imageUrl;
    if (thumb) {
      const img = h("img", { class: "tpl-thumb msg-image", alt: "image" });
      const src = hooks.media(thumb);
      if (src) { img.src = src; img.dataset.src = thumb; }
      if (opts.square) img.classList.add("square");
      card.append(img);
    }
    if (col.title) card.append(h("div", { class: "tpl-title" }, col.title));
    if (col.text) card.append(h("div", { class: "tpl-text" }, ...hooks.text(uid, col.text, ctx)));
    const actions = col.actions || (col.action ? [col.action] : []);
    card.append(h("div", { class: "tpl-actions" + (opts.row ? " row" : "") }, actions.map((a) => actionButton(a, uid))));
    return tappable(card, uid, col.defaultAction);
  }

  function renderTemplate(message, uid, ctx) {
    const t = message.template || {};
    const square = t.imageAspectRatio === "square";
    if (t.type === "buttons") return templateCard(t, uid, ctx, { square });
    if (t.type === "confirm") return templateCard(t, uid, ctx, { row: true });
    if (t.type === "carousel") return h("div", { class: "carousel" }, (t.columns || []).map((col) => templateCard(col, uid, ctx, { square })));
    if (t.type === "image_carousel") {
      return h("div", { class: "carousel" }, (t.columns || []).map((col) => {
        const img = h("img", { class: "tpl-thumb square msg-image", alt: "image" });
        const src = hooks.media(col.imageUrl);
        if (src) { img.src = src; img.dataset.src = col.imageUrl; }
        return tappable(h("div", { class: "tpl-card" }, img, col.action && col.action.label ? h("div", { class: "tpl-text" }, col.action.label) : null), uid, col.action);
      }));
    }
    return h("div", { class: "bubble bot unknown" }, `[template: ${String(t.type)}]`);
  }

  // ---- rendering: one message ---------------------------------------------------------------------------
  function renderMessage(message, uid, ctx) {
    switch (message.type) {
      case "text":
        return h("div", { class: "bubble bot" }, ...hooks.text(uid, message.text || "", ctx));
      case "image": {
        const url = message.originalContentUrl || message.previewImageUrl;
        const img = h("img", { class: "msg-image", alt: "image" });
        const src = hooks.media(message.previewImageUrl || url);
        if (src) { img.src = src; img.dataset.src = url; }
        ctx.images.push(url);
        return h("div", { class: "image-message" }, img);
      }
      case "flex":
        return h("div", { class: "flex-message", title: message.altText || "" }, renderFlex(message, uid, ctx));
      case "template":
        return h("div", { class: "template-message", title: message.altText || "" }, renderTemplate(message, uid, ctx));
      case "sticker":
        return h("div", { class: "sticker" }, "🧸", h("small", {}, ` sticker ${message.packageId}/${message.stickerId}`));
      default:
        return h("div", { class: "bubble bot unknown" }, `[${String(message.type)} message]`);
    }
  }

  return { h, use, context, renderMessage, renderFlex, renderBubble, renderTemplate };
})();

// The event explorer's strings, English and Simplified Chinese (the type makes zh-CN complete).
import type { FeatureLocales } from "../../i18n/feature";

const en = {
  events: {
    nav: "Event explorer",
    title: "Event explorer",
    form: "Subject pattern",
    pattern: "Subject pattern",
    patternHelp: "Family first, NATS wildcards: alert.>, deploy.*.*.payments, audit.recorded.prod.*. Limited to your namespaces.",
    follow: "Follow",
    pause: "Pause",
    resume: "Resume",
    clear: "Clear",
    states: {
      idle: "Not following.",
      connecting: "Connecting…",
      live: "Following {{pattern}} live.",
      paused: "Paused: new events wait on the stream and follow when you resume.",
      error: "The stream stopped: {{reason}}",
    },
    shown: "{{count}} events, newest first",
    shown_one: "{{count}} event",
    none: "No event yet for this pattern.",
    trace: "Trace in Jaeger",
    undecodable: "Undecodable entry #{{sequence}}: {{reason}}",
    dropped: "The gateway dropped the stream (the page read too slowly); reconnecting from the last event.",
    sequence: "#{{sequence}}",
    subject: "Subject",
  },
};

const zhCN: typeof en = {
  events: {
    nav: "事件浏览器",
    title: "事件浏览器",
    form: "主题模式",
    pattern: "主题模式",
    patternHelp: "以事件族开头，可用 NATS 通配符：alert.>、deploy.*.*.payments、audit.recorded.prod.*。仅限你的命名空间。",
    follow: "跟踪",
    pause: "暂停",
    resume: "继续",
    clear: "清空",
    states: {
      idle: "未在跟踪。",
      connecting: "正在连接…",
      live: "正在实时跟踪 {{pattern}}。",
      paused: "已暂停：新事件保留在流中，继续后接着显示。",
      error: "事件流已停止：{{reason}}",
    },
    shown: "{{count}} 个事件，最新的在前",
    shown_one: "{{count}} 个事件",
    none: "此模式下还没有事件。",
    trace: "在 Jaeger 中查看追踪",
    undecodable: "无法解码的条目 #{{sequence}}：{{reason}}",
    dropped: "网关断开了事件流（页面读取太慢），正在从最后一个事件重新连接。",
    sequence: "#{{sequence}}",
    subject: "主题",
  },
};

export const eventsLocales: FeatureLocales = { en, zhCN };

import { useEffect, useState } from "react";

const secondsUntil = (until: number | undefined): number =>
  until ? Math.max(0, Math.ceil((until - Date.now()) / 1000)) : 0;

/** Whole seconds left until `until` (epoch ms), ticking once a second; 0 when past or unset. */
export function useCountdown(until: number | undefined): number {
  const [seconds, setSeconds] = useState(() => secondsUntil(until));
  useEffect(() => {
    setSeconds(secondsUntil(until));
    if (!until) return;
    const t = window.setInterval(() => {
      const s = secondsUntil(until);
      setSeconds(s);
      if (s === 0) window.clearInterval(t);
    }, 1000);
    return () => {
      window.clearInterval(t);
    };
  }, [until]);
  return seconds;
}

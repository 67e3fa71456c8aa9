/** Clocks a test controls, for `services.clock` and the simulators. */
import type { Clock } from "../../lib/services.js";

/** Real time plus jumps the test makes: what would take a wait takes an `advance`. */
export class OffsetClock implements Clock {
  private offsetMs = 0;
  now = (): Date => new Date(Date.now() + this.offsetMs);
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

/** A clock that stands still until the test moves it. */
export class ManualClock implements Clock {
  private ms: number;
  constructor(start: Date = new Date()) {
    this.ms = start.getTime();
  }
  now = (): Date => new Date(this.ms);
  advance(ms: number): void {
    this.ms += ms;
  }
}

/**
 * What happens after one run of a step ends (pure): release the next step
 * whose condition holds (skipping those whose `when` is false), repeat a step
 * (`repeat_until`), jump on a failure (`on_failure: goto`), hand out a
 * `for_each` step's items up to its parallelism, or cancel what has not run.
 */
import { evaluateCondition, evaluateList, type StepOutcome } from "./conditions";
import { isFinalTaskStatus, type TaskStatus } from "./task-machine";
import {
  aggregateWorkflowStatus,
  CONDITION_ERROR,
  currentRuns,
  iterationOf,
  MAX_FOR_EACH_ITEMS,
  MAX_ITERATIONS_REACHED,
  outcomeOf,
  SKIPPED,
  type StepState,
  type StepView,
  skipped,
  stepView,
  stepViews,
  type WorkflowStatus,
} from "./workflow";

type Change = { status: TaskStatus; result?: unknown; error?: string | null; errorCode?: string | null };

/** One decision of the plan, for the job's watchers. */
export interface StepDecision {
  step_index: number;
  decision:
    | "run"
    | "skipped"
    | "continued_after_failure"
    | "condition_error"
    | "repeat"
    | "repeat_until_met"
    | "max_iterations_reached"
    | "goto"
    | "goto_exhausted"
    | "for_each";
  when?: string;
  error?: string;
  /** repeat, goto: the run that starts (0-based). */
  iteration?: number;
  /** goto: the step the run goes on at. */
  to_step?: number;
  /** for_each: how many items. */
  items?: number;
}

/** A run the plan adds: a step's next iteration, or one of its items (copied from run `fromTaskId`). */
export interface NewRun {
  taskId: string;
  fromTaskId: string;
  stepIndex: number;
  iteration: number;
  itemIndex: number | null;
  /** The item (a for_each run), set in its payload with its index. */
  item?: unknown;
  released: boolean;
}

export interface StepPlan<S extends StepState = StepState> {
  /** Existing pending runs to release now. */
  release: string[];
  /** A run that becomes its step's first item (its payload gains the item) and is released. */
  firstItem: { taskId: string; item: unknown } | null;
  /** Runs to add (loops, items); `released` ones are dispatched at once. */
  create: NewRun[];
  /** Pending runs skipped (their condition was false, or a goto jumped over them), each with why. */
  skip: { taskId: string; error: string }[];
  /** Runs that fail: a pending step whose condition could not be evaluated, or a finished run whose loop ends in failure. */
  fail: { taskId: string; error: string; errorCode: string }[];
  /** Pending runs to cancel (the run stopped, or their step failed), each with why. */
  cancel: { taskId: string; error: string }[];
  /**
   * Set when the changed run has siblings (a step's items): how many of them had ended when the plan
   * was made. The write holds only if that is still so — two items ending at once cannot both think
   * the other still runs (and leave the step undecided).
   */
  siblingsEnded: { stepIndex: number; iteration: number; ended: number } | null;
  decisions: StepDecision[];
  status: WorkflowStatus;
  /** Every step as it is once the plan is applied (a job folds these into its status and progress). */
  steps: StepView<S>[];
}

/**
 * What a workflow (or a job's run of steps) does when run `taskId` reaches
 * `ended.status`. `newId` names the runs the plan adds.
 */
export function planAfterStepChange<S extends StepState>(
  rows: readonly S[],
  taskId: string,
  ended: TaskStatus | Change,
  newId: () => string = () => crypto.randomUUID(),
): StepPlan<S> {
  const change: Change = typeof ended === "string" ? { status: ended } : ended;
  // Copies: the plan marks runs on its own working list, never on the caller's.
  const work: S[] = rows.map((r) => (r.taskId === taskId ? { ...r, ...change } : { ...r }));
  const planner = new Planner(work, newId);
  const current = work.find((r) => r.taskId === taskId);
  if (current) planner.afterRun(current, rows);
  return planner.finish();
}

class Planner<S extends StepState> {
  readonly plan: StepPlan<S> = {
    release: [],
    firstItem: null,
    create: [],
    skip: [],
    fail: [],
    cancel: [],
    siblingsEnded: null,
    decisions: [],
    status: "pending",
    steps: [],
  };
  private stopped = false;
  private readonly lastStep: number;

  constructor(
    private readonly work: S[],
    private readonly newId: () => string,
  ) {
    this.lastStep = Math.max(-1, ...work.map((r) => r.stepIndex));
  }

  private view(stepIndex: number): StepView<S> {
    return stepView(this.work, stepIndex);
  }

  /** What a condition of step `stepIndex` reads: the steps before it (a sequence's steps are 0…n-1). */
  private outcomesBefore(stepIndex: number): StepOutcome[] {
    return Array.from({ length: stepIndex }, (_, i) => outcomeOf(this.view(i)));
  }

  /** The changed run `current` (the caller's rows as they were: `before`). */
  afterRun(current: S, before: readonly S[]) {
    const s = current.stepIndex;
    const runs = currentRuns(this.work, s);
    if (!runs.includes(current)) return; // a superseded iteration's late end: its step has moved on
    if (runs.length > 1) {
      this.plan.siblingsEnded = {
        stepIndex: s,
        iteration: iterationOf(current),
        ended: currentRuns(before, s).filter((r) => r.taskId !== current.taskId && isFinalTaskStatus(r.status)).length,
      };
    }
    const wasSettled = isFinalTaskStatus(stepView(before, s).status);
    const step = this.view(s);
    if (wasSettled) return; // decided already (an item ending after its step failed)
    if (!isFinalTaskStatus(step.status)) {
      if (isFinalTaskStatus(current.status)) this.releaseItems(s);
      return;
    }
    if (step.status === "completed") return this.afterCompleted(step, current);
    if (step.status === "failed") return this.afterFailed(s);
    if (!skipped(step)) this.stop();
  }

  private afterCompleted(step: StepView<S>, current: S) {
    const s = step.stepIndex;
    const until = step.rules?.repeatUntil;
    if (!until) return this.walk(s + 1);
    const verdict = evaluateCondition(until, [...this.outcomesBefore(s), outcomeOf(step)]);
    if (!verdict.ok) {
      const error = `the repeat_until of step ${s} failed: ${verdict.error}`;
      this.plan.decisions.push({ step_index: s, decision: "condition_error", when: until, error: verdict.error });
      this.failRun(current, error, CONDITION_ERROR);
      return this.stop();
    }
    if (verdict.value) {
      this.plan.decisions.push({ step_index: s, decision: "repeat_until_met", when: until, iteration: step.iterations - 1 });
      return this.walk(s + 1);
    }
    const max = step.rules?.maxIterations ?? 1;
    if (step.iterations < max) {
      const run = this.newIteration(s, true);
      this.plan.decisions.push({ step_index: s, decision: "repeat", when: until, iteration: run.iteration });
      return;
    }
    this.plan.decisions.push({ step_index: s, decision: "max_iterations_reached", when: until, iteration: step.iterations - 1 });
    this.failRun(current, `repeat_until ${until} was still false after ${max} iterations`, MAX_ITERATIONS_REACHED);
    return this.afterFailed(s);
  }

  private afterFailed(s: number) {
    const step = this.view(s);
    // Its items that have not started will not: the step has its outcome.
    for (const r of currentRuns(this.work, s)) if (r.status === "pending") this.cancelRun(r, `step ${s} failed`);
    if (step.errorCode === CONDITION_ERROR) return this.stop();
    const rules = step.rules;
    if (rules?.onFailure === "continue") {
      this.plan.decisions.push({ step_index: s, decision: "continued_after_failure" });
      return this.walk(s + 1);
    }
    if (rules?.onFailure === "goto" && rules.gotoStep !== undefined) {
      const to = rules.gotoStep;
      if (to > s) {
        this.plan.decisions.push({ step_index: s, decision: "goto", to_step: to });
        for (let i = s + 1; i < to; i++) {
          for (const r of currentRuns(this.work, i)) {
            if (r.status === "pending" && !r.released) this.skipRun(r, `skipped: step ${s} failed and the run went on at step ${to}`);
          }
        }
        return this.walk(to);
      }
      if (step.iterations < (rules.maxIterations ?? 1)) {
        const again: NewRun[] = [];
        for (let i = to; i <= s; i++) again.push(this.newIteration(i, false));
        this.plan.decisions.push({ step_index: s, decision: "goto", to_step: to, iteration: again[0]?.iteration ?? 0 });
        return this.walk(to);
      }
      this.plan.decisions.push({ step_index: s, decision: "goto_exhausted", to_step: to, iteration: step.iterations - 1 });
    }
    this.stop();
  }

  /** From step `from` on: skip what its condition rules out, release the first that runs (fanning a for_each out). */
  private walk(from: number) {
    for (let i = from; i <= this.lastStep; i++) {
      const runs = currentRuns(this.work, i);
      const run = runs[0];
      if (!run || runs.some((r) => r.released || r.status !== "pending")) return;
      const when = run.rules?.when;
      if (when) {
        const verdict = evaluateCondition(when, this.outcomesBefore(i));
        if (!verdict.ok) {
          const error = `the condition of step ${i} failed: ${verdict.error}`;
          this.plan.decisions.push({ step_index: i, decision: "condition_error", when, error: verdict.error });
          this.failRun(run, error, CONDITION_ERROR);
          return this.stop();
        }
        this.plan.decisions.push({ step_index: i, decision: verdict.value ? "run" : "skipped", when });
        if (!verdict.value) {
          this.skipRun(run, `skipped: ${when} was false`);
          continue;
        }
      }
      const forEach = run.rules?.forEach;
      if (!forEach) return this.releaseRun(run);
      const items = evaluateList(forEach, this.outcomesBefore(i), MAX_FOR_EACH_ITEMS);
      if (!items.ok) {
        const error = `the for_each of step ${i} failed: ${items.error}`;
        this.plan.decisions.push({ step_index: i, decision: "condition_error", when: forEach, error: items.error });
        this.failRun(run, error, CONDITION_ERROR);
        return this.stop();
      }
      this.plan.decisions.push({ step_index: i, decision: "for_each", when: forEach, items: items.value.length });
      if (items.value.length === 0) {
        this.skipRun(run, `skipped: for_each ${forEach} gave no items`);
        continue;
      }
      return this.fanOut(run, items.value);
    }
  }

  /** The step's first run becomes item 0; the other items are new runs, released up to the parallelism. */
  private fanOut(run: S, items: unknown[]) {
    const parallelism = run.rules?.parallelism ?? 1;
    this.plan.firstItem = { taskId: run.taskId, item: items[0] };
    Object.assign(run, { itemIndex: 0, released: true });
    items.slice(1).forEach((item, k) => {
      const itemIndex = k + 1;
      this.addRun(
        {
          fromTaskId: run.taskId,
          stepIndex: run.stepIndex,
          iteration: iterationOf(run),
          itemIndex,
          item,
          released: itemIndex < parallelism,
        },
        run,
      );
    });
  }

  /** A for_each run ended and its step goes on: start waiting items while fewer than `parallelism` run. */
  private releaseItems(s: number) {
    const runs = currentRuns(this.work, s);
    const parallelism = runs[0]?.rules?.parallelism ?? 1;
    let inFlight = runs.filter((r) => r.released && !isFinalTaskStatus(r.status)).length;
    for (const r of runs) {
      if (inFlight >= parallelism) break;
      if (r.status !== "pending" || r.released) continue;
      this.releaseRun(r);
      inFlight++;
    }
  }

  /** A new run of step `s` (its next iteration), copied from its latest run. */
  private newIteration(s: number, released: boolean): NewRun {
    const from = currentRuns(this.work, s)[0]!;
    const iteration = this.view(s).iterations;
    return this.addRun({ fromTaskId: from.taskId, stepIndex: s, iteration, itemIndex: null, released }, from);
  }

  private addRun(fields: Omit<NewRun, "taskId">, like: S): NewRun {
    const run: NewRun = { taskId: this.newId(), ...fields };
    this.plan.create.push(run);
    this.work.push({
      ...like,
      taskId: run.taskId,
      iteration: run.iteration,
      itemIndex: run.itemIndex,
      status: "pending",
      released: run.released,
      result: null,
      error: null,
      errorCode: null,
    });
    return run;
  }

  private releaseRun(run: S) {
    if (!this.plan.create.some((c) => c.taskId === run.taskId)) this.plan.release.push(run.taskId);
    else this.plan.create.find((c) => c.taskId === run.taskId)!.released = true;
    Object.assign(run, { released: true });
  }

  private skipRun(run: S, error: string) {
    this.plan.skip.push({ taskId: run.taskId, error });
    Object.assign(run, { status: "cancelled", error, errorCode: SKIPPED });
  }

  private failRun(run: S, error: string, errorCode: string) {
    this.plan.fail.push({ taskId: run.taskId, error, errorCode });
    Object.assign(run, { status: "failed", error, errorCode });
  }

  private cancelRun(run: S, error: string) {
    if (!this.plan.cancel.some((c) => c.taskId === run.taskId)) this.plan.cancel.push({ taskId: run.taskId, error });
    Object.assign(run, { status: "cancelled", error, errorCode: "cancelled" });
  }

  private stop() {
    if (this.stopped) return;
    this.stopped = true;
    for (const r of this.work) if (r.status === "pending") this.cancelRun(r, "an earlier step did not complete");
  }

  finish(): StepPlan<S> {
    this.plan.steps = stepViews(this.work);
    this.plan.status = aggregateWorkflowStatus(this.plan.steps);
    return this.plan;
  }
}

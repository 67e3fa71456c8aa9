/**
 * Every project of the org with its Supabase status and its Grafana: the step in progress,
 * trial time left, plan, and what can be done now. An instance in flight is polled on its own
 * (with back-off) until its operation ends; nothing is polled otherwise.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useRef, useState } from "react";

import { ApiError, BILLING_CODES, type Instance, type Me, type Project } from "../api/client";
import { ErrorMessage } from "../components/ErrorMessage";
import { OpenGrafana } from "../components/GrafanaLink";
import { deprovision, getInstance, getProjects, keys, provision } from "../data";
import {
  DELETE_STEPS,
  dateLabel,
  PROVISION_STEPS,
  REPLACE_STEPS,
  planLabel,
  supabaseStatus,
  timeLeft,
} from "../format";
import { backoffInterval, isInFlight } from "../poll";
import { alertsPath, Link } from "../router";

const pollWhileInFlight = backoffInterval<Instance | null>((i) =>
  i && isInFlight(i.state) ? `${i.state}/${i.step}` : undefined,
);

export function ProjectsScreen({ me }: { me: Me }) {
  const client = useQueryClient();
  const projects = useQuery({
    queryKey: keys.projects,
    queryFn: () => getProjects(client),
  });
  const [billingError, setBillingError] = useState<ApiError>();

  return (
    <section aria-labelledby="projects-title">
      <h1 id="projects-title" tabIndex={-1}>
        Projects
      </h1>
      <p className="lead">
        Every project of {me.org.name}. Give a project its own Grafana with Prometheus and the
        Supabase dashboard.
      </p>
      {!me.user && (
        <p className="notice">
          To provision or change a Grafana, first <Link to="/identify">identify yourself</Link>.
        </p>
      )}
      {billingError && (
        <div className="error-box" role="alert">
          <p>{billingError.message}</p>
          <Link className="button primary" to="/billing">
            Go to billing
          </Link>
        </div>
      )}
      {projects.isPending && <p role="status">Loading projects…</p>}
      <ErrorMessage error={projects.error} />
      {projects.data &&
        (projects.data.projects.length === 0 ? (
          <p>This organization has no projects yet.</p>
        ) : (
          <ul className="projects" aria-label="Projects">
            {projects.data.projects.map((p) => (
              <ProjectCard
                key={p.ref}
                project={p}
                verified={me.user !== null}
                onNeedsBilling={setBillingError}
              />
            ))}
          </ul>
        ))}
    </section>
  );
}

function ProjectCard({
  project,
  verified,
  onNeedsBilling,
}: {
  project: Project;
  verified: boolean;
  onNeedsBilling: (err: ApiError) => void;
}) {
  const client = useQueryClient();
  const id = useId();
  const instance = useQuery({
    queryKey: keys.instance(project.ref),
    queryFn: () => getInstance(project.ref),
    initialData: project.instance,
    staleTime: Infinity,
    refetchOnWindowFocus: false,
    refetchInterval: pollWhileInFlight,
  });
  const current = instance.data;

  const onInstance = (i: Instance) => {
    client.setQueryData(keys.instance(project.ref), i);
  };
  const onError = (err: unknown) => {
    if (err instanceof ApiError && err.status === 402 && BILLING_CODES.has(err.code))
      onNeedsBilling(err);
  };
  const create = useMutation({
    mutationFn: () => provision(project.ref),
    onSuccess: onInstance,
    onError,
  });
  const remove = useMutation({ mutationFn: () => deprovision(project.ref), onSuccess: onInstance });
  const dialog = useRef<HTMLDialogElement>(null);

  const state = current?.state;
  const deleted = state === "Deleted";
  const canProvision = !current || deleted;
  // The API refuses a paused project (409 project_paused): say why up front instead.
  const paused = project.status === "INACTIVE";
  const actionError = (create.error ?? remove.error) as unknown;
  const shownError =
    actionError instanceof ApiError && actionError.status === 402 ? undefined : actionError;

  return (
    <li className="card project" aria-labelledby={`${id}-name`}>
      <div className="project-head">
        <h2 id={`${id}-name`}>{project.name}</h2>
        <p className="meta">
          <span className={`dot ${project.status === "ACTIVE_HEALTHY" ? "ok" : "warn"}`} />
          Supabase: {supabaseStatus(project.status)} · {project.region} · <code>{project.ref}</code>
        </p>
      </div>
      <div className="grafana" aria-live="polite">
        {!current || deleted ? (
          <p className="state">{deleted ? "Grafana deleted." : "No Grafana yet."}</p>
        ) : (
          <InstanceStatus instance={current} />
        )}
      </div>
      <div className="actions">
        {canProvision && (
          <button
            type="button"
            className="primary"
            onClick={() => create.mutate()}
            disabled={!verified || paused || create.isPending}
            aria-describedby={paused ? `${id}-paused` : undefined}
          >
            {create.isPending ? "Requesting…" : "Provision Grafana"}
            <span className="sr-only"> for {project.name}</span>
          </button>
        )}
        {canProvision && paused && (
          <p id={`${id}-paused`} className="hint">
            Paused in Supabase: restore the project there first.
          </p>
        )}
        {state === "Failed" && (
          <button
            type="button"
            className="primary"
            onClick={() => (current?.operation === "deprovision" ? remove : create).mutate()}
            disabled={!verified || create.isPending || remove.isPending}
          >
            Retry<span className="sr-only"> provisioning {project.name}</span>
          </button>
        )}
        {state === "Running" && verified && (
          <OpenGrafana projectRef={project.ref} projectName={project.name} />
        )}
        {current && !deleted && verified && (
          <Link className="button" to={alertsPath(project.ref)}>
            Alerts<span className="sr-only"> for {project.name}</span>
          </Link>
        )}
        {(state === "Running" || state === "Failed") && (
          <button
            type="button"
            className="danger"
            onClick={() => dialog.current?.showModal()}
            disabled={!verified || remove.isPending}
          >
            Delete<span className="sr-only"> Grafana of {project.name}</span>
          </button>
        )}
      </div>
      <ErrorMessage error={shownError} />
      <dialog ref={dialog} aria-labelledby={`${id}-del`} className="confirm">
        <form method="dialog">
          <h2 id={`${id}-del`}>Delete the Grafana of {project.name}?</h2>
          <p>
            This removes its virtual machine, data disk, address and route. Dashboards, alert
            history and metrics kept by this Grafana are lost. The Supabase project itself is not
            touched.
          </p>
          <div className="actions">
            <button type="submit" value="cancel" autoFocus>
              Cancel
            </button>
            <button type="submit" value="delete" className="danger" onClick={() => remove.mutate()}>
              Delete Grafana
            </button>
          </div>
        </form>
      </dialog>
    </li>
  );
}

function InstanceStatus({ instance }: { instance: Instance }) {
  const deleting = instance.operation === "deprovision";
  const replacing = instance.operation === "upgrade" || instance.operation === "heal";
  const steps = deleting ? DELETE_STEPS : replacing ? REPLACE_STEPS : PROVISION_STEPS;
  const failed = instance.state === "Failed";
  const at = steps.indexOf(instance.state);
  return (
    <>
      <p className="state">
        Grafana:{" "}
        <strong className={`badge ${instance.state.toLowerCase()}`}>{instance.state}</strong>
        {" · "}
        {planLabel(instance.plan)}
        {instance.plan === "trial" && instance.trialEndsAt && (
          <> ({timeLeft(instance.trialEndsAt)})</>
        )}
      </p>
      {isInFlight(instance.state) && (
        <ol
          className="steps"
          aria-label={
            deleting
              ? "Deletion progress"
              : replacing
                ? "Host replacement progress"
                : "Provisioning progress"
          }
        >
          {steps.map((s, i) => (
            <li
              key={s}
              className={i < at ? "done" : i === at ? "current" : ""}
              aria-current={i === at ? "step" : undefined}
            >
              {s}
            </li>
          ))}
        </ol>
      )}
      {replacing && isInFlight(instance.state) && (
        <p className="hint">
          {instance.operation === "heal"
            ? "The host stopped answering and is being replaced; dashboards and metrics are kept."
            : "Upgrading the host to a new version; dashboards and metrics are kept."}
        </p>
      )}
      {failed && (
        <p className="error">
          {deleting ? "Deleting" : replacing ? "Replacing the host" : "Provisioning"} failed
          {instance.lastError ? `: ${instance.lastError}` : "."}
        </p>
      )}
      {instance.state === "Running" && instance.healedAt && (
        <p className="hint">
          Replaced automatically on {dateLabel(instance.healedAt)} after it stopped answering.
        </p>
      )}
    </>
  );
}

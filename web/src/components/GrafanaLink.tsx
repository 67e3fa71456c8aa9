/** Opens a project's Grafana in a new tab. Kept on its own so the sign-in can change in one place. */
export function OpenGrafana({ url, projectName }: { url: string; projectName: string }) {
  return (
    <a className="button primary" href={url} target="_blank" rel="noopener noreferrer">
      Open Grafana<span className="sr-only"> for {projectName} (opens in a new tab)</span>
    </a>
  );
}

// Renders deploy/k8s with `kubectl kustomize`, validates every object against the Kubernetes schemas
// (kubernetes-models), and checks the properties the deployment depends on.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Pod } from "kubernetes-models/v1/Pod";
import type { IPod } from "kubernetes-models/v1/Pod";
import { loadPluginConfig } from "../../services/kube-kms-plugin/src/config";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";

const ROOT = path.join(__dirname, "..", "..", "deploy", "k8s");

// Every kind the manifests may contain; anything else fails the test.
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

function render(dir: string): K8sObject[] {
  // kubectl's built-in kustomize (kubectl >= 1.21); the machine image's kubectl carries kustomize v5.
  const yaml = execFileSync("kubectl", ["kustomize", path.join(ROOT, dir)], { encoding: "utf8" });
  return parseAllDocuments(yaml).map((doc) => {
    if (doc.errors.length > 0) throw doc.errors[0];
    return doc.toJSON() as K8sObject;
  });
}

function find<T>(objects: K8sObject[], kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name.startsWith(name));
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found as unknown as T;
}

function env(container: IContainer, name: string): string | undefined {
  return container.env?.find((e) => e.name === name)?.value;
}

describe.each(["base", "overlays/dev", "overlays/prod"])("%s", (dir) => {
  let objects: K8sObject[];
  let deployment: IDeployment;
  let api: IContainer;
  let worker: IContainer;

  beforeAll(() => {
    objects = render(dir);
    deployment = find<IDeployment>(objects, "Deployment", "kms-api");
    const spec = deployment.spec!.template.spec!;
    api = spec.containers.find((c) => c.name === "kms-api")!;
    worker = spec.initContainers!.find((c) => c.name === "hsm-worker")!;
  });

  it("validates every object against the Kubernetes schemas", () => {
    expect(objects.length).toBeGreaterThanOrEqual(5);
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      if (!Model) throw new Error(`unexpected kind ${object.apiVersion}/${object.kind}`);
      expect(() => new Model(object as never).validate()).not.toThrow();
    }
  });

  it("runs the hsm-worker as a sidecar sharing the socket through an emptyDir", () => {
    const spec = deployment.spec!.template.spec!;
    expect(worker.restartPolicy).toBe("Always");
    const socketVolume = spec.volumes!.find((v) => v.name === "worker-socket")!;
    expect(socketVolume.emptyDir).toEqual({ medium: "Memory", sizeLimit: "1Mi" });
    for (const c of [api, worker]) {
      expect(c.volumeMounts!.find((m) => m.name === "worker-socket")!.mountPath).toBe("/run/kms");
      // In a directory of its own that the worker creates 0700: the emptyDir's root is world-writable.
      expect(env(c, "KMS_WORKER_SOCKET")).toBe("/run/kms/worker/hsm-worker.sock");
    }
    // The worker listens on nothing but the socket.
    expect(worker.ports).toBeUndefined();
  });

  it("migrates in an init container that runs to completion before kms-api starts", () => {
    const init = deployment.spec!.template.spec!.initContainers!;
    const migrate = init.find((c) => c.name === "migrate")!;
    expect(migrate.command).toEqual(["node", "services/kms-api/dist/migrate.js"]);
    expect(migrate.image).toBe(api.image);
    expect(migrate.restartPolicy).toBeUndefined();
    expect(migrate.env!.find((e) => e.name === "DATABASE_URL")!.valueFrom?.secretKeyRef?.key).toBe("url");
  });

  it("probes kms-api with the native grpc probe on the health port", () => {
    expect(api.readinessProbe?.grpc).toEqual({ port: 7301, service: "kms.v1.KeyManagementService" });
    expect(api.startupProbe?.grpc).toEqual({ port: 7301, service: "kms.v1.KeyManagementService" });
    expect(api.livenessProbe?.grpc).toEqual({ port: 7301 });
    expect(api.ports).toEqual([
      { name: "grpc", containerPort: 7300 },
      { name: "health", containerPort: 7301 },
    ]);
  });

  it("runs as non-root, read-only, with every capability dropped, and sets requests and limits", () => {
    const spec = deployment.spec!.template.spec!;
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } });
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.serviceAccountName).toBe("kms-api");
    for (const c of [...spec.initContainers!, ...spec.containers]) {
      expect({ name: c.name, ...c.securityContext }).toEqual({
        name: c.name,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      });
      expect(c.resources?.requests).toBeDefined();
      expect(c.resources?.limits).toBeDefined();
    }
  });

  it("takes the database URL, the PIN and the TLS material from Secrets by reference", () => {
    const spec = deployment.spec!.template.spec!;
    const dbRef = api.env!.find((e) => e.name === "DATABASE_URL")!;
    expect(dbRef.value).toBeUndefined();
    expect(dbRef.valueFrom?.secretKeyRef?.key).toBe("url");
    expect(dbRef.valueFrom?.secretKeyRef?.name).toMatch(/^kms-database/);
    expect(env(worker, "KMS_PKCS11_PIN")).toBeUndefined();
    expect(env(worker, "KMS_PKCS11_PIN_FILE")).toBe("/etc/kms/pkcs11/pin");
    expect(spec.volumes!.find((v) => v.name === "pkcs11-pin")!.secret?.secretName).toMatch(/^kms-pkcs11-pin/);
    expect(spec.volumes!.find((v) => v.name === "tls")!.secret?.secretName).toBe("kms-api-tls");
    expect([env(api, "KMS_TLS_CERT"), env(api, "KMS_TLS_KEY"), env(api, "KMS_TLS_CLIENT_CA")]).toEqual(["/etc/kms/tls/tls.crt", "/etc/kms/tls/tls.key", "/etc/kms/tls/ca.crt"]);
    // No value anywhere in the pod spec is a credential.
    for (const c of [...spec.initContainers!, ...spec.containers]) {
      for (const e of c.env ?? []) expect(e.name).not.toMatch(/PIN$|PASSWORD$/);
    }
  });

  it("has a Service on 7300, a PodDisruptionBudget and a NetworkPolicy", () => {
    const service = find<{ spec: { ports: { port: number; name: string }[] } }>(objects, "Service", "kms-api");
    expect(service.spec.ports).toEqual([{ name: "grpc", port: 7300, targetPort: "grpc", protocol: "TCP", appProtocol: "grpc" }]);
    const pdb = find<{ spec: { maxUnavailable: number; selector: unknown } }>(objects, "PodDisruptionBudget", "kms-api");
    expect(pdb.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: { "app.kubernetes.io/name": "kms-api" } } });
    const policy = find<INetworkPolicy>(objects, "NetworkPolicy", "kms-api");
    expect(policy.spec!.policyTypes).toEqual(["Ingress", "Egress"]);
    const egressPorts = policy.spec!.egress!.flatMap((rule) => rule.ports!.map((p) => p.port));
    expect(egressPorts).toEqual(expect.arrayContaining([53, 5432]));
  });

  // Was `namespaceSelector: {}` (every namespace) with a pod label that anyone who may create a pod can set.
  it("admits gRPC only from labelled pods in namespaces named by kubernetes.io/metadata.name", () => {
    const policy = find<INetworkPolicy>(objects, "NetworkPolicy", "kms-api");
    const namespaces = { base: ["kms-clients"], "overlays/dev": ["kms-dev"], "overlays/prod": ["payments", "orders"] }[dir];
    expect(policy.spec!.ingress).toEqual([
      {
        from: [
          {
            namespaceSelector: { matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: namespaces }] },
            podSelector: { matchLabels: { "kms.example.com/client": "true" } },
          },
        ],
        ports: [{ protocol: "TCP", port: 7300 }],
      },
    ]);
  });

  // Was two rules with ports and no `to`: DNS and 5432 to any address, i.e. a way out to anywhere on 53.
  it("lets the pod out only to the cluster DNS, the database and (prod) the HSM: every egress rule names its peers", () => {
    const egress = find<INetworkPolicy>(objects, "NetworkPolicy", "kms-api").spec!.egress!;
    for (const rule of egress) {
      expect(rule.to?.length).toBeGreaterThan(0);
      expect(rule.ports?.length).toBeGreaterThan(0);
      for (const peer of rule.to!) {
        if (peer.ipBlock) expect(Number(peer.ipBlock.cidr.split("/")[1])).toBeGreaterThanOrEqual(16);
        // A bare namespaceSelector would admit every pod of the namespace(s); {} would be every namespace.
        if (peer.namespaceSelector) expect(peer.podSelector).toBeDefined();
        expect(peer.namespaceSelector).not.toEqual({});
      }
    }
    const dns = egress.filter((rule) => rule.ports!.some((p) => p.port === 53));
    expect(dns).toEqual([
      {
        to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } }, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
        ports: [
          { protocol: "UDP", port: 53 },
          { protocol: "TCP", port: 53 },
        ],
      },
    ]);
    const database = egress.filter((rule) => rule.ports!.some((p) => p.port === 5432));
    const databasePeers =
      dir === "overlays/prod" ? [{ ipBlock: { cidr: "198.51.100.0/24" } }] : [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "kms-postgres" } } }];
    expect(database).toEqual([{ to: databasePeers, ports: [{ protocol: "TCP", port: 5432 }] }]);
    expect(egress).toHaveLength(dir === "overlays/prod" ? 3 : 2);
  });

  // Was: no module in the base and a silent software root key on the pod's ephemeral /tmp.
  it("never opts in to the software root key: a worker without a PKCS#11 module refuses to start", () => {
    for (const c of [...deployment.spec!.template.spec!.initContainers!, ...deployment.spec!.template.spec!.containers]) {
      expect([c.name, env(c, "KMS_ALLOW_SOFTWARE_ROOT")]).toEqual([c.name, undefined]);
    }
    expect(env(worker, "KMS_PKCS11_MODULE")).toBe(
      { base: undefined, "overlays/dev": "/usr/lib/softhsm/libsofthsm2.so", "overlays/prod": "/usr/safenet/lunaclient/lib/libCryptoki2_64.so" }[dir],
    );
  });

  it("requires verified TLS to Postgres in prod (kms-api and migrate), and only there", () => {
    const migrate = deployment.spec!.template.spec!.initContainers!.find((c) => c.name === "migrate")!;
    const expected = dir === "overlays/prod" ? "true" : undefined;
    expect([env(api, "KMS_REQUIRE_DATABASE_TLS"), env(migrate, "KMS_REQUIRE_DATABASE_TLS")]).toEqual([expected, expected]);
  });
});

describe("overlays", () => {
  it("the schema check is not a no-op: it rejects a malformed Deployment", () => {
    const broken = JSON.parse(JSON.stringify(find<IDeployment>(render("base"), "Deployment", "kms-api"))) as IDeployment;
    (broken.spec!.template.spec!.containers[0]!.readinessProbe!.grpc as { port: unknown }).port = "health";
    expect(() => new Deployment(broken).validate()).toThrow("readinessProbe/grpc/port must be integer");
  });

  it("base and prod run at least two replicas; dev runs one (its SoftHSM2 token is per pod)", () => {
    const replicas = (dir: string) => find<IDeployment>(render(dir), "Deployment", "kms-api").spec!.replicas;
    expect(replicas("base")).toBe(2);
    expect(replicas("overlays/prod")).toBe(3);
    expect(replicas("overlays/dev")).toBe(1);
  });

  it("dev: SoftHSM2 module, a token initialised before the worker, and an in-cluster Postgres", () => {
    const objects = render("overlays/dev");
    const spec = find<IDeployment>(objects, "Deployment", "kms-api").spec!.template.spec!;
    expect(spec.initContainers!.map((c) => c.name)).toEqual(["softhsm-init", "hsm-worker", "migrate"]);
    const worker = spec.initContainers!.find((c) => c.name === "hsm-worker")!;
    expect(env(worker, "KMS_PKCS11_MODULE")).toBe("/usr/lib/softhsm/libsofthsm2.so");
    expect(worker.image).toBe("kms-hsm-worker:0.1.0-dev");
    expect(worker.volumeMounts!.find((m) => m.name === "softhsm-tokens")!.mountPath).toBe("/var/lib/softhsm/tokens");
    expect(find<{ spec: { replicas: number } }>(objects, "StatefulSet", "kms-postgres").spec.replicas).toBe(1);
    expect(objects.every((o) => o.kind === "Namespace" || o.metadata.namespace === "kms-dev")).toBe(true);
  });

  it("prod: a network HSM module and token label, HSM egress, and no Secret or database in the overlay", () => {
    const objects = render("overlays/prod");
    const spec = find<IDeployment>(objects, "Deployment", "kms-api").spec!.template.spec!;
    const worker = spec.initContainers!.find((c) => c.name === "hsm-worker")!;
    expect(env(worker, "KMS_PKCS11_MODULE")).toBe("/usr/safenet/lunaclient/lib/libCryptoki2_64.so");
    expect(env(worker, "KMS_PKCS11_MODULE")).not.toMatch(/softhsm/i);
    expect(env(worker, "KMS_PKCS11_TOKEN_LABEL")).toBe("kms-prod");
    expect(spec.volumes!.find((v) => v.name === "hsm-client")!.secret?.secretName).toBe("hsm-client");
    expect(objects.map((o) => o.kind).sort()).toEqual(["Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"]);
    const policy = find<INetworkPolicy>(objects, "NetworkPolicy", "kms-api");
    expect(policy.spec!.egress).toContainEqual({ to: [{ ipBlock: { cidr: "192.0.2.0/28" } }], ports: [{ protocol: "TCP", port: 1792 }] });
    expect(objects.every((o) => o.metadata.namespace === "kms")).toBe(true);
  });
});

describe("deploy/kube-kms-plugin: the Kubernetes KMS v2 plugin", () => {
  const dir = path.join(__dirname, "..", "..", "deploy", "kube-kms-plugin");
  const pod = parse(readFileSync(path.join(dir, "static-pod.yaml"), "utf8")) as IPod;
  const config = parse(readFileSync(path.join(dir, "encryption-configuration.yaml"), "utf8")) as Record<string, unknown>;
  const plugin = pod.spec!.containers[0]!;

  it("is a valid static Pod for the control-plane nodes, with nothing but the socket and its TLS files", () => {
    expect(() => new Pod(pod as never).validate()).not.toThrow();
    expect([pod.metadata!.namespace, pod.spec!.hostNetwork, pod.spec!.priorityClassName, pod.spec!.automountServiceAccountToken]).toEqual(["kube-system", true, "system-node-critical", false]);
    expect(plugin.command).toEqual(["node", "services/kube-kms-plugin/dist/main.js"]);
    expect(plugin.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
    expect(plugin.ports).toBeUndefined();
    expect([plugin.resources?.requests !== undefined, plugin.resources?.limits !== undefined]).toEqual([true, true]);
    expect(pod.spec!.volumes!.map((v) => [v.name, v.hostPath?.path])).toEqual([
      ["socket", "/var/run/kmsplugin"],
      ["tls", "/etc/kubernetes/kms-plugin"],
    ]);
    expect(plugin.volumeMounts!.map((m) => [m.name, m.mountPath, m.readOnly ?? false])).toEqual([
      ["socket", "/var/run/kmsplugin", false],
      ["tls", "/etc/kubernetes/kms-plugin", true],
    ]);
  });

  it("passes the plugin's own configuration check, calling kms-api over mutual TLS", () => {
    const env = Object.fromEntries(plugin.env!.map((e) => [e.name, e.value]));
    expect([env.KMS_TLS_CA, env.KMS_TLS_CERT, env.KMS_TLS_KEY].map((f) => path.dirname(f!))).toEqual(["/etc/kubernetes/kms-plugin", "/etc/kubernetes/kms-plugin", "/etc/kubernetes/kms-plugin"]);
    // The TLS files live on the node; the rest is checked as the plugin checks it at start.
    const { KMS_TLS_CA: _ca, KMS_TLS_CERT: _cert, KMS_TLS_KEY: _key, ...rest } = env;
    const parsed = loadPluginConfig({ ...rest, KMS_ADDR: "127.0.0.1:7300" });
    expect([parsed.socketPath, parsed.keyId, parsed.cluster]).toEqual(["/var/run/kmsplugin/kms/kms.sock", "alias/k8s/prod-1", "prod-1"]);
    // The plugin creates the socket's directory itself (0700): the hostPath's own directory is the kubelet's 0755.
    expect(path.dirname(path.dirname(parsed.socketPath))).toBe(pod.spec!.volumes![0]!.hostPath!.path);
  });

  // kubernetes-models has no schema for apiserver.config.k8s.io, so the document is checked field by field.
  it("has an EncryptionConfiguration with the kms v2 provider on the plugin's socket, then identity", () => {
    const socket = plugin.env!.find((e) => e.name === "KMS_PLUGIN_LISTEN")!.value;
    expect(config).toEqual({
      apiVersion: "apiserver.config.k8s.io/v1",
      kind: "EncryptionConfiguration",
      resources: [{ resources: ["secrets"], providers: [{ kms: { apiVersion: "v2", name: "kms", endpoint: socket, timeout: "5s" } }, { identity: {} }] }],
    });
    const kms = (config.resources as { providers: { kms?: { timeout: string } }[] }[])[0]!.providers[0]!.kms!;
    expect(kms.timeout).toMatch(/^\d+(ms|s|m)$/);
  });
});

/**
 * Certificates for a local kube-apiserver, made once with openssl and kept under .stack/kube/pki (.stack/kube-b/pki for the second cluster):
 * a CA, the serving cert (valid for 127.0.0.1 whatever the port), an admin client cert in
 * group system:masters, and the service-account signing key pair used by the TokenRequest API.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface KubePki {
  caCert: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

function signedCert(dir: string, name: string, subject: string, extensions: string): void {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  openssl(['genrsa', '-out', key, '2048']);
  openssl(['req', '-new', '-key', key, '-subj', subject, '-out', csr]);
  writeFileSync(ext, extensions);
  openssl([
    'x509', '-req', '-in', csr, '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial',
    '-days', '3650', '-sha256', '-extfile', ext, '-out', join(dir, `${name}.crt`),
  ]);
}

export function ensureKubePki(dir: string): KubePki {
  const pki: KubePki = {
    caCert: join(dir, 'ca.crt'),
    serverCert: join(dir, 'apiserver.crt'),
    serverKey: join(dir, 'apiserver.key'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
  };
  mkdirSync(dir, { recursive: true });
  if (Object.values(pki).every((f) => existsSync(f))) return pki;
  openssl(['genrsa', '-out', join(dir, 'ca.key'), '2048']);
  openssl(['req', '-x509', '-new', '-key', join(dir, 'ca.key'), '-subj', '/CN=hybrid-release-local-ca', '-days', '3650', '-sha256', '-out', pki.caCert]);
  signedCert(
    dir,
    'apiserver',
    '/CN=kube-apiserver',
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' +
      'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n',
  );
  // system:masters is bound to cluster-admin by the bootstrap RBAC policy
  signedCert(
    dir,
    'admin',
    '/O=system:masters/CN=hybrid-release-admin',
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
  );
  openssl(['genrsa', '-out', pki.saKey, '2048']);
  openssl(['rsa', '-in', pki.saKey, '-pubout', '-out', pki.saPub]);
  return pki;
}

/** A kubeconfig with one context, `name`, for the cluster's admin (client cert in system:masters). */
export function adminKubeconfig(server: string, pki: KubePki, name = 'hybrid-release-local'): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `  - name: ${name}`,
    '    cluster:',
    `      server: ${server}`,
    `      certificate-authority: ${pki.caCert}`,
    'users:',
    `  - name: ${name}-admin`,
    '    user:',
    `      client-certificate: ${pki.adminCert}`,
    `      client-key: ${pki.adminKey}`,
    'contexts:',
    `  - name: ${name}`,
    `    context: {cluster: ${name}, user: ${name}-admin, namespace: default}`,
    `current-context: ${name}`,
    '',
  ].join('\n');
}

// Public objects of the device itself, served on the plain-HTTP listener too: the TLS
// certificate, so clients can pin it before the CA issue brings a proper chain.
import Router from '@koa/router';

export function devicePkiRouter(tlsCertPem: string): Router {
  const router = new Router();
  router.get('/pki/device.pem', (ctx) => {
    ctx.type = 'application/x-pem-file';
    ctx.body = tlsCertPem;
  });
  return router;
}

// BouncyCastle side of the revocation interop test (test/interop/pki-revocation-bouncycastle.test.ts).
// One JVM per batch: one command per line on stdin, one result line per command. Paths are
// files written by the test (DER CRLs / OCSP responses, PEM or DER certificates).
//   crl  <crl.der> <issuer.pem>
//        -> ok sig=<bool> issuerMatches=<bool> alg=<oid> number=<n> nextUpdateAfterNow=<bool> entries=<serialHex>:<reason|->,...
//   ocsp <resp.der> <issuer.pem>
//        -> ok status=<n> sig=<bool> alg=<oid> delegated=<bool> responderIssuedByCa=<bool> ocspSigning=<bool> noCheck=<bool>
//              nonce=<hex|-> responses=<serialHex>:good|revoked/<reason|->|unknown,...
//   pkix <leaf.pem> <intermediate.pem> <root.pem> <crl.der>...
//        -> valid | invalid <index> <message>     (PKIX, revocation checking ON, CRLs from the given files)
// Signatures through JcaContentVerifierProviderBuilder().setProvider("BC"): SM3withSM2 with BC's
// default ID 1234567812345678, ECDSA, RSA. Any failure prints "error <message>".
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.Security;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertStore;
import java.security.cert.CertificateFactory;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Date;
import java.util.List;
import org.bouncycastle.asn1.ASN1Integer;
import org.bouncycastle.asn1.ASN1OctetString;
import org.bouncycastle.asn1.x509.CRLReason;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.ocsp.OCSPObjectIdentifiers;
import org.bouncycastle.cert.X509CRLEntryHolder;
import org.bouncycastle.cert.X509CRLHolder;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.ocsp.BasicOCSPResp;
import org.bouncycastle.cert.ocsp.CertificateStatus;
import org.bouncycastle.cert.ocsp.OCSPResp;
import org.bouncycastle.cert.ocsp.RevokedStatus;
import org.bouncycastle.cert.ocsp.SingleResp;
import org.bouncycastle.cert.ocsp.UnknownStatus;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.ContentVerifierProvider;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.util.encoders.Hex;

public class RevocationInterop {
  static CertificateFactory cf;

  static X509Certificate cert(String path) throws Exception {
    byte[] b = Files.readAllBytes(Paths.get(path));
    return (X509Certificate) cf.generateCertificate(new ByteArrayInputStream(b));
  }

  static ContentVerifierProvider verifier(X509CertificateHolder c) throws Exception {
    return new JcaContentVerifierProviderBuilder().setProvider("BC").build(c);
  }

  static String reason(Extension ext) {
    if (ext == null) return "-";
    return String.valueOf(CRLReason.getInstance(ext.getParsedValue()).getValue().intValue());
  }

  public static void main(String[] args) throws Exception {
    Security.addProvider(new BouncyCastleProvider());
    cf = CertificateFactory.getInstance("X.509", "BC");
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    StringBuilder out = new StringBuilder();
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      line = line.trim();
      if (line.isEmpty()) continue;
      String[] f = line.split(" ");
      try {
        switch (f[0]) {
          case "crl": {
            X509CRLHolder crl = new X509CRLHolder(Files.readAllBytes(Paths.get(f[1])));
            X509CertificateHolder issuer = new X509CertificateHolder(cert(f[2]).getEncoded());
            boolean sig = crl.isSignatureValid(verifier(issuer));
            Extension num = crl.getExtension(Extension.cRLNumber);
            StringBuilder entries = new StringBuilder();
            for (Object o : crl.getRevokedCertificates()) {
              X509CRLEntryHolder e = (X509CRLEntryHolder) o;
              if (entries.length() > 0) entries.append(',');
              entries.append(e.getSerialNumber().toString(16)).append(':').append(reason(e.getExtension(Extension.reasonCode)));
            }
            out.append("ok sig=").append(sig)
                .append(" issuerMatches=").append(crl.getIssuer().equals(issuer.getSubject()))
                .append(" alg=").append(crl.toASN1Structure().getSignatureAlgorithm().getAlgorithm().getId())
                .append(" number=").append(num == null ? "-" : ASN1Integer.getInstance(num.getParsedValue()).getValue().toString())
                .append(" nextUpdateAfterNow=").append(crl.getNextUpdate() != null && crl.getNextUpdate().after(new Date()))
                .append(" entries=").append(entries.length() == 0 ? "-" : entries.toString())
                .append('\n');
            break;
          }
          case "ocsp": {
            OCSPResp resp = new OCSPResp(Files.readAllBytes(Paths.get(f[1])));
            if (resp.getStatus() != OCSPResp.SUCCESSFUL) {
              out.append("ok status=").append(resp.getStatus()).append('\n');
              break;
            }
            BasicOCSPResp basic = (BasicOCSPResp) resp.getResponseObject();
            X509CertificateHolder issuer = new X509CertificateHolder(cert(f[2]).getEncoded());
            X509CertificateHolder[] certs = basic.getCerts();
            boolean delegated = certs.length > 0;
            X509CertificateHolder responder = delegated ? certs[0] : issuer;
            boolean sig = basic.isSignatureValid(verifier(responder));
            boolean issuedByCa = delegated && responder.getIssuer().equals(issuer.getSubject()) && responder.isSignatureValid(verifier(issuer));
            ExtendedKeyUsage eku = ExtendedKeyUsage.fromExtensions(responder.getExtensions());
            boolean ocspSigning = eku != null && eku.hasKeyPurposeId(KeyPurposeId.id_kp_OCSPSigning);
            boolean noCheck = responder.getExtension(OCSPObjectIdentifiers.id_pkix_ocsp_nocheck) != null;
            Extension nonce = basic.getExtension(OCSPObjectIdentifiers.id_pkix_ocsp_nonce);
            StringBuilder rs = new StringBuilder();
            for (SingleResp s : basic.getResponses()) {
              if (rs.length() > 0) rs.append(',');
              rs.append(s.getCertID().getSerialNumber().toString(16)).append(':');
              CertificateStatus st = s.getCertStatus();
              if (st == CertificateStatus.GOOD) rs.append("good");
              else if (st instanceof RevokedStatus) {
                RevokedStatus r = (RevokedStatus) st;
                rs.append("revoked/").append(r.hasRevocationReason() ? String.valueOf(r.getRevocationReason()) : "-");
              } else if (st instanceof UnknownStatus) rs.append("unknown");
              else rs.append("?");
            }
            out.append("ok status=0 sig=").append(sig)
                .append(" alg=").append(basic.getSignatureAlgOID().getId())
                .append(" delegated=").append(delegated)
                .append(" responderIssuedByCa=").append(issuedByCa)
                .append(" ocspSigning=").append(ocspSigning)
                .append(" noCheck=").append(noCheck)
                .append(" nonce=").append(nonce == null ? "-" : Hex.toHexString(ASN1OctetString.getInstance(nonce.getParsedValue()).getOctets()))
                .append(" responses=").append(rs)
                .append('\n');
            break;
          }
          case "pkix": {
            X509Certificate leaf = cert(f[1]);
            X509Certificate intermediate = cert(f[2]);
            X509Certificate root = cert(f[3]);
            List<Object> store = new ArrayList<>();
            store.add(intermediate);
            for (int i = 4; i < f.length; i++) {
              store.add((X509CRL) cf.generateCRL(new ByteArrayInputStream(Files.readAllBytes(Paths.get(f[i])))));
            }
            List<X509Certificate> chain = new ArrayList<>();
            chain.add(leaf);
            chain.add(intermediate);
            CertPath path = cf.generateCertPath(chain);
            PKIXParameters params = new PKIXParameters(Collections.singleton(new TrustAnchor(root, null)));
            params.setRevocationEnabled(true);
            params.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(store), "BC"));
            try {
              CertPathValidator.getInstance("PKIX", "BC").validate(path, params);
              out.append("valid\n");
            } catch (CertPathValidatorException e) {
              out.append("invalid ").append(e.getIndex()).append(' ').append(String.valueOf(e.getMessage()).replace('\n', ' ')).append('\n');
            }
            break;
          }
          default:
            out.append("error unknown command ").append(f[0]).append('\n');
        }
      } catch (Exception e) {
        out.append("error ").append(e.getClass().getSimpleName()).append(' ').append(String.valueOf(e.getMessage()).replace('\n', ' ')).append('\n');
      }
    }
    System.out.print(out);
  }
}

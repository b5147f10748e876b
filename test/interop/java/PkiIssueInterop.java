// BouncyCastle side of the certificate-issuance interop tests (test/interop/pki-issue-peers.test.ts).
// One JVM per batch: one command per line on stdin, one result line per command.
//   path    <rootHex> <certHex>...   -> ok | error <reason>   PKIX CertPathValidator (BC provider),
//                                       leaf first, trust anchor = root, revocation checking off
//   tsacert <certHex>                -> ok | error <reason>   TSPUtil.validateCertificate (RFC 3161 §2.3:
//                                       exactly one EKU, timeStamping, critical)
//   ext     <certHex> <oid>          -> the extension's value parsed by BC (ASN1Dump, one line) | absent
// Certificates are DER in hex. Any failure prints "error <message>" for that line.
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.security.Security;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.ASN1Primitive;
import org.bouncycastle.asn1.util.ASN1Dump;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.tsp.TSPUtil;
import org.bouncycastle.util.encoders.Hex;

public class PkiIssueInterop {
  public static void main(String[] args) throws Exception {
    Security.addProvider(new BouncyCastleProvider());
    CertificateFactory cf = CertificateFactory.getInstance("X.509", "BC");
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
    StringBuilder out = new StringBuilder();
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      line = line.trim();
      if (line.isEmpty()) continue;
      String[] f = line.split(" ");
      try {
        switch (f[0]) {
          case "path": {
            X509Certificate root = (X509Certificate) cf.generateCertificate(new ByteArrayInputStream(Hex.decode(f[1])));
            List<X509Certificate> chain = new ArrayList<>();
            for (int i = 2; i < f.length; i++) chain.add((X509Certificate) cf.generateCertificate(new ByteArrayInputStream(Hex.decode(f[i]))));
            CertPath path = cf.generateCertPath(chain);
            PKIXParameters params = new PKIXParameters(Collections.singleton(new TrustAnchor(root, null)));
            params.setRevocationEnabled(false);
            CertPathValidator.getInstance("PKIX", "BC").validate(path, params);
            out.append("ok\n");
            break;
          }
          case "tsacert": {
            TSPUtil.validateCertificate(new X509CertificateHolder(Hex.decode(f[1])));
            out.append("ok\n");
            break;
          }
          case "ext": {
            X509CertificateHolder h = new X509CertificateHolder(Hex.decode(f[1]));
            Extension e = h.getExtension(new ASN1ObjectIdentifier(f[2]));
            if (e == null) {
              out.append("absent\n");
            } else {
              ASN1Primitive v = ASN1Primitive.fromByteArray(e.getExtnValue().getOctets());
              out.append(ASN1Dump.dumpAsString(v, true).trim().replaceAll("\\s+", " ")).append('\n');
            }
            break;
          }
          default:
            out.append("error unknown command ").append(f[0]).append('\n');
        }
      } catch (Exception e) {
        out.append("error ").append(String.valueOf(e.getMessage()).replaceAll("\\s+", " ")).append('\n');
      }
    }
    System.out.print(out);
  }
}

import nodemailer, { type Transporter } from 'nodemailer';
import type { Config } from '../config/load.js';
import type { Logger } from './log/logger.js';

export interface Mail {
  to: string;
  subject: string;
  text: string;
}

export interface Mailer {
  /** Sends through SMTP when SMTP_URL is set; otherwise writes the mail to the log. */
  send(mail: Mail): Promise<{ delivered: boolean }>;
}

export function createMailer(config: Config, logger: Logger): Mailer {
  let transport: Transporter | undefined;
  return {
    async send(mail) {
      if (!config.smtp.url) {
        logger.warn({ component: 'mail', to: mail.to }, `SMTP_URL is not set; mail not sent. Subject: ${mail.subject}\n${mail.text}`);
        return { delivered: false };
      }
      transport ??= nodemailer.createTransport(config.smtp.url);
      await transport.sendMail({ from: config.smtp.from, to: mail.to, subject: mail.subject, text: mail.text });
      return { delivered: true };
    },
  };
}

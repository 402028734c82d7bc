// An engine error shown in context: what failed, and the engine's hint for what to do.
import { Alert, AlertTitle } from '@mui/material';
import { toApiError, type ApiError } from '../api';

/** Accepts any error: a plain Error (however it got here) is shown, never crashes the view. */
export function ErrorNote({ error }: { error: ApiError | Error | undefined }) {
  if (!error) return null;
  const { detail } = toApiError(error);
  return (
    <Alert severity="error" sx={{ my: 1 }} data-testid="error-note">
      <AlertTitle>{detail.message}</AlertTitle>
      {detail.hint}
    </Alert>
  );
}

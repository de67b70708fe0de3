SELECT threadline.unaudit_table('"public"."users"');

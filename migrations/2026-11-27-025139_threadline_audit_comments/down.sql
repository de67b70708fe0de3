SELECT threadline.unaudit_table('"public"."comments"');
